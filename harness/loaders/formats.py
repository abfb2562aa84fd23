"""Public data formats by name, and the ``source:`` block of a suite file that picks one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from evaltune.harness.loaders import bbq, bold, crows_pairs, generic, truthfulqa
from evaltune.harness.loaders.checks import check_keys, check_limit, describe
from evaltune.harness.loaders.files import resolve
from evaltune.harness.loaders.hub import load_hub
from evaltune.harness.suite import SuiteError, SuiteSpec


class FormatLoader(Protocol):
    def __call__(self, path: Path, limit: int | None = None) -> SuiteSpec: ...


FORMATS: dict[str, FormatLoader] = {
    "truthfulqa": truthfulqa.load,
    "truthfulqa_mc": truthfulqa.load_mc,
    "truthfulqa_gen": truthfulqa.load_gen,
    "crows_pairs": crows_pairs.load,
    "bbq": bbq.load,
    "bold": bold.load,
    "jsonl": generic.load,
    "csv": generic.load,
    "generic": generic.load,
}
HUB_FORMAT = "hf"
PATH_KEYS = frozenset({"format", "path", "limit"})
HUB_KEYS = frozenset({"format", "dataset", "split", "config", "columns", "limit"})


def load_source(spec: Any, source: str, base_dir: Path) -> SuiteSpec:
    """The suite a ``source:`` mapping names: ``{format, path, limit}``, or ``{format: hf, dataset, ...}``."""
    if not isinstance(spec, Mapping):
        raise SuiteError(
            source,
            f"must be a mapping such as {{format: bbq, path: data/bbq}}, not {describe(spec)}",
            field="source",
        )
    fmt = spec.get("format")
    known = [*FORMATS, HUB_FORMAT]
    if fmt not in known:
        raise SuiteError(
            source, f"unknown format {fmt!r}; use one of {', '.join(known)}", field="source.format"
        )
    limit = check_limit(spec.get("limit"), source)
    if fmt == HUB_FORMAT:
        check_keys(spec, HUB_KEYS, source, what="key of an hf source")
        return load_hub(
            _text(spec, "dataset", source),
            split=_text(spec, "split", source) if "split" in spec else "test",
            config=_text(spec, "config", source) if spec.get("config") is not None else None,
            columns=spec.get("columns"),
            limit=limit,
        )
    check_keys(spec, PATH_KEYS, source, what="key of source")
    path = resolve(base_dir, _text(spec, "path", source))
    if not path.exists():
        raise SuiteError(
            source, f"not found: {path}; paths are relative to the suite file", field="source.path"
        )
    return FORMATS[fmt](path, limit)


def _text(spec: Mapping[str, Any], key: str, source: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(source, f"needs '{key}' (text), not {describe(value)}", field=f"source.{key}")
    return value
