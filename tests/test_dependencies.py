"""The stack the project is tested on sits inside the ranges it declares, and the fragile dependencies are capped."""

from __future__ import annotations

from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CAPPED = ("transformers", "peft", "trl")  # the decoder and the trainers use their internals


def _declared() -> dict[str, Requirement]:
    """The installed distribution's own requirements (pyproject.toml's as installed), extras left out."""
    found = [Requirement(line) for line in requires("evaltune") or []]
    return {req.name.lower(): req for req in found if not req.marker}


def _pinned() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, _, pinned = line.partition("==")
            pins[name.strip().lower()] = Version(pinned.strip())
    return pins


@pytest.mark.parametrize("name", CAPPED)
def test_fragile_dependencies_have_an_upper_bound(name: str) -> None:
    specifiers = _declared()[name].specifier
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in specifiers), f"{name} {specifiers} has no cap"


def test_the_pinned_and_installed_stack_sits_inside_the_declared_ranges() -> None:
    declared = _declared()
    pins = _pinned()
    assert set(CAPPED) | {"torch"} <= set(pins), "constraints.txt pins the stack CI installs"
    for name, pinned in pins.items():
        if name in declared:
            assert declared[name].specifier.contains(pinned, prereleases=True), f"{name}=={pinned} vs {declared[name]}"
    for name in CAPPED:
        installed = Version(version(name))
        assert declared[name].specifier.contains(installed, prereleases=True), f"installed {name} {installed}"
