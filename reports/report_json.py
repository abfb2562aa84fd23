"""Reading a report JSON back into a ``Report``, whichever version of evaltune wrote it.

    report = load_report_json("report.json")

The writer is ``records.report_to_dict`` (``evaltune report --format json``, the app's download). Each
version's changes are undone by one migration step, oldest first, so a file from any earlier version
reads as the current one (inspect_ai's logs do the same). Versions:

1. No ``schema_version`` field. A scorer named ``rouge`` reported ROUGE-L F, the number ``rouge_l``
   reports; it is read as ``rouge_l`` (or dropped where the report also has ``rouge_l``: the same number).
2. ``schema_version: 2``; ``rouge`` is gone (ROUGE-1, -2 and -L are ``rouge_1``, ``rouge_2``, ``rouge_l``).
   Metric rows were one per scorer, the mean of its per-output scores.
3. Metric rows are the runs' own metrics under the names the run summary prints (``reports.metric_compare``).
   A version-2 row whose number is a version-3 metric's is renamed to it (``crows_pairs`` is
   ``crows_pairs_pct_stereotype``, ``bbq`` is ``bbq_accuracy``); a row whose number no version-3 metric has is
   dropped (``cf_length_gap`` was the mean length in words, not a gap; ``perplexity`` was the mean of the items'
   perplexities, not the pooled one), so that no name carries a second meaning.

Fields a writer adds beside the report (``gates``, ``gates_passed``) are not part of it and are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaltune.reports.records import REPORT_SCHEMA_VERSION, Report


class ReportJsonError(ValueError):
    """A report JSON that cannot be read; the message names the file, the field and the fix."""


def load_report_json(path: str | Path) -> Report:
    """The report stored at ``path`` (any schema version up to ``REPORT_SCHEMA_VERSION``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportJsonError(f"{path}: cannot read the report ({error.strerror})") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportJsonError(f"{path}: not a JSON file ({error}); write it with "
                              "'evaltune report BASELINE CANDIDATE --format json'") from None
    return report_from_dict(data, where=str(path))


def report_from_dict(data: Any, where: str = "report") -> Report:
    """The ``Report`` in ``data`` (a parsed report JSON), migrated to the current schema version first."""
    if not isinstance(data, dict):
        raise ReportJsonError(f"{where}: expected a JSON object (a report), got {type(data).__name__}")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReportJsonError(f"{where}: field 'schema_version' must be a whole number from 1, got {version!r}")
    if version > REPORT_SCHEMA_VERSION:
        raise ReportJsonError(f"{where}: written by a newer evaltune (schema_version {version}; this one reads up "
                              f"to {REPORT_SCHEMA_VERSION}); upgrade evaltune to read it")
    for step in range(version, REPORT_SCHEMA_VERSION):
        data = _MIGRATIONS[step](data)
    return typing.cast(Report, _build(Report, data, where, ""))


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: the metric ``rouge`` (ROUGE-L F) becomes ``rouge_l``, or goes where ``rouge_l`` is present."""
    out = {**data, "schema_version": 2}
    metrics = data.get("metrics")
    if not isinstance(metrics, list):
        return out  # not a report; the reader says which field is wrong
    drop = any(isinstance(m, dict) and m.get("name") == "rouge_l" for m in metrics)
    out["metrics"] = _renamed_rows(metrics, "name", drop)
    if isinstance(data.get("tags"), list):
        out["tags"] = _renamed_rows(data["tags"], "metric", drop)
    if isinstance(data.get("flipped"), list):
        out["flipped"] = [{**row, **{side: _renamed(row[side], drop) for side in ("lost", "gained")
                                     if isinstance(row.get(side), list)}} if isinstance(row, dict) else row
                          for row in data["flipped"]]
    return out


def _renamed_rows(rows: list[Any], key: str, drop: bool) -> list[Any]:
    """Rows whose ``key`` is ``rouge`` renamed to ``rouge_l``, or left out when ``drop``."""
    out = []
    for row in rows:
        if isinstance(row, dict) and row.get(key) == "rouge":
            if not drop:
                out.append({**row, key: "rouge_l"})
        else:
            out.append(row)
    return out


def _renamed(names: list[Any], drop: bool) -> list[Any]:
    return ["rouge_l" if name == "rouge" else name for name in names if not (drop and name == "rouge")]


# Version 2 rows named after a scorer whose run-level metric has another name or another meaning.
RENAMED_IN_3 = {"crows_pairs": "crows_pairs_pct_stereotype", "bbq": "bbq_accuracy"}
DROPPED_IN_3 = frozenset({"cf_sentiment_gap", "cf_toxicity_gap", "cf_refusal_gap", "cf_length_gap", "cf_similarity",
                          "demographic_representation", "perplexity"})


def _from_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: scorer rows become the metric of the same number, or go (see the module's docstring)."""
    out = {**data, "schema_version": 3}

    def dropped(name: Any) -> bool:
        return isinstance(name, str) and name in DROPPED_IN_3

    def new_name(name: Any) -> Any:
        return RENAMED_IN_3.get(name, name) if isinstance(name, str) else name

    def kept(rows: Any, key: str) -> Any:
        if not isinstance(rows, list):
            return rows  # not a report; the reader says which field is wrong
        return [{**row, key: new_name(row[key])} if isinstance(row, dict) and key in row else row
                for row in rows if not (isinstance(row, dict) and dropped(row.get(key)))]

    def names(values: list[Any]) -> list[Any]:
        return [new_name(name) for name in values if not dropped(name)]

    for field, key in (("metrics", "name"), ("tags", "metric")):
        if field in data:
            out[field] = kept(data[field], key)
    if isinstance(data.get("flipped"), list):
        out["flipped"] = [{**row, **{side: names(row[side]) for side in ("lost", "gained")
                                     if isinstance(row.get(side), list)}} if isinstance(row, dict) else row
                          for row in data["flipped"]]
    return out


_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_v1, 2: _from_v2}


def _build(kind: Any, value: Any, where: str, field: str) -> Any:
    """``value`` (parsed JSON) as the type ``kind``; ``field`` is its path inside the report, for messages."""
    if dataclasses.is_dataclass(kind):
        return _build_dataclass(typing.cast(type, kind), value, where, field)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):  # X | None
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _build(inner, value, where, field)
    if origin is list:
        if not isinstance(value, list):
            raise ReportJsonError(f"{where}: field '{field}' must be a list, got {value!r}")
        return [_build(args[0], item, where, f"{field}[{i}]") for i, item in enumerate(value)]
    if kind is float:
        if value is None:  # the writer turns NaN (no data) into null
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportJsonError(f"{where}: field '{field}' must be a number or null, got {value!r}")
        return float(value)
    if kind in (int, str, bool) and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ReportJsonError(f"{where}: field '{field}' must be {kind.__name__}, got {value!r}")
    return value  # int, str, bool, and the free-form lineage dicts


def _build_dataclass(kind: type, value: Any, where: str, field: str) -> Any:
    if not isinstance(value, dict):
        raise ReportJsonError(f"{where}: field '{field or 'report'}' must be an object, got {value!r}")
    hints = typing.get_type_hints(kind)
    values = {}
    for spec in dataclasses.fields(kind):
        path = f"{field}.{spec.name}" if field else spec.name
        if spec.name in value:
            values[spec.name] = _build(hints[spec.name], value[spec.name], where, path)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ReportJsonError(f"{where}: field '{path}' is missing; is this a report written by "
                                  "'evaltune report --format json'?")
    return kind(**values)
