"""Built-in suites: the suite files shipped in ``harness/suites/``, found by name."""

from __future__ import annotations

from pathlib import Path

from evaltune.harness.suite import SuiteError

SUITES_DIR = Path(__file__).resolve().parent / "suites"


def builtin_suites() -> dict[str, Path]:
    """Every built-in suite, name (the file's stem) to path, sorted by name."""
    return {path.stem: path for path in sorted(SUITES_DIR.glob("*.yaml"))}


def builtin_path(name: str) -> Path:
    """The suite file of the built-in suite ``name``; raises ``SuiteError`` listing the names there are."""
    suites = builtin_suites()
    if name not in suites:
        known = ", ".join(suites) or "none"
        raise SuiteError(name, f"no built-in suite of that name; built-in suites: {known}")
    return suites[name]
