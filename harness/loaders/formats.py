"""Public data formats by name, and the ``source:`` block of a suite file that picks one.

An installed package adds a format with an entry point in the group ``evaltune.loaders`` named after the format,
pointing at a function ``load(path: Path, limit: int | None = None)`` that returns a ``SuiteSpec`` or a list of
item mappings (the keys of a suite file's items, checked here like any suite's)::

    [project.entry-points."evaltune.loaders"]
    qa_lines = "my_package.loaders:load_qa_lines"     # source: {format: qa_lines, path: data/questions.txt}

A suite still names only data: the format's name and a path. A loader plugin that fails to import, or that takes
a built-in format's name, is one line in ``loader_problems()`` and is not used; the other formats still work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from evaltune.harness.loaders import bbq, bold, crows_pairs, generic, lm_eval_task, memorisation, truthfulqa
from evaltune.harness.loaders.checks import check_keys, check_limit, describe
from evaltune.harness.loaders.files import resolve
from evaltune.harness.loaders.hub import load_hub
from evaltune.harness.loaders.items import check_items, item_from_dict
from evaltune.harness.suite import SuiteError, SuiteSpec
from evaltune.metrics import plugins


class FormatLoader(Protocol):
    def __call__(self, path: Path, limit: int | None = None) -> SuiteSpec: ...


FORMATS: dict[str, FormatLoader] = {
    "truthfulqa": truthfulqa.load,
    "truthfulqa_mc": truthfulqa.load_mc,
    "truthfulqa_gen": truthfulqa.load_gen,
    "crows_pairs": crows_pairs.load,
    "bbq": bbq.load,
    "bbq_gen": bbq.load_gen,
    "bold": bold.load,
    "jsonl": generic.load,
    "csv": generic.load,
    "generic": generic.load,
    "lm_eval": lm_eval_task.load,
    "memorisation": memorisation.load,
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
    if fmt != HUB_FORMAT and not (isinstance(fmt, str) and is_format(fmt)):  # built-ins need no plugin scan
        known = known_formats()
        broken = "".join(f"; {problem}" for problem in loader_problems())
        raise SuiteError(
            source, f"unknown format {fmt!r}; use one of {', '.join(known)}{broken}", field="source.format"
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
    return load_format(fmt, path, limit, source)


def _text(spec: Mapping[str, Any], key: str, source: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(source, f"needs '{key}' (text), not {describe(value)}", field=f"source.{key}")
    return value


_PLUGIN_FORMATS: dict[str, tuple[FormatLoader, str]] = {}  # format -> (loader, origin)
_LOADER_PROBLEMS: list[str] = []
_PLUGINS_LOADED = False


def known_formats() -> list[str]:
    """Every format a ``source:`` block may name: built in, ``hf``, and those installed packages add."""
    _load_plugins()
    return [*FORMATS, HUB_FORMAT, *_PLUGIN_FORMATS]


def is_format(name: str) -> bool:
    """Whether ``name`` is a format that reads a path: built in, or one an installed package adds."""
    if name in FORMATS:
        return True
    _load_plugins()
    return name in _PLUGIN_FORMATS


def load_format(fmt: str, path: Path, limit: int | None = None, source: str | None = None) -> SuiteSpec:
    """The suite in ``path`` read as format ``fmt`` (see ``is_format``); ``source`` names it in messages."""
    if fmt in FORMATS:
        return FORMATS[fmt](path, limit)
    return _from_plugin(fmt, path, limit, source or str(path))


def loader_problems() -> list[str]:
    """One line per installed loader plugin that cannot be used."""
    _load_plugins()
    return list(_LOADER_PROBLEMS)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for point in plugins.plugin_entry_points(plugins.LOADERS_GROUP):
        if point.name in FORMATS or point.name == HUB_FORMAT or point.name in _PLUGIN_FORMATS:
            owner = _PLUGIN_FORMATS[point.name][1] if point.name in _PLUGIN_FORMATS else "a built-in format"
            _LOADER_PROBLEMS.append(plugins.problem_line(
                point, f"is not used: the format name '{point.name}' is taken by {owner}; rename the entry point"))
            continue
        loaded, problem = plugins.load_plugin(point, accept=_check_callable)
        if problem is not None:
            _LOADER_PROBLEMS.append(problem)
        else:
            _PLUGIN_FORMATS[point.name] = (loaded, plugins.origin(point))


def _check_callable(loaded: Any) -> None:
    if not callable(loaded):
        raise TypeError(f"names {describe(loaded)}, not a function load(path, limit=None)")


def _from_plugin(fmt: str, path: Path, limit: int | None, source: str) -> SuiteSpec:
    """A plugin format's suite: its ``SuiteSpec``, or its item mappings checked like a suite file's items."""
    loader, origin = _PLUGIN_FORMATS[fmt]
    where = f"{source} (format '{fmt}', {origin})"
    try:
        loaded: Any = loader(path, limit)
    except SuiteError:
        raise
    except Exception as error:  # the plugin's own failure on this file, in one line
        raise SuiteError(where, f"could not read {path}: {type(error).__name__}: {error}", field="source") from None
    if isinstance(loaded, SuiteSpec):
        return loaded
    if not isinstance(loaded, (list, tuple)):
        raise SuiteError(where, f"the loader returned {describe(loaded)}, not a SuiteSpec or a list of items",
                         field="source")
    rows = loaded[:limit] if limit is not None else loaded
    items = check_items((item_from_dict(row, where, n) for n, row in enumerate(rows, start=1)), where)
    return SuiteSpec(name=path.stem, items=items, scorers=generic.default_scorers(items), source=where)
