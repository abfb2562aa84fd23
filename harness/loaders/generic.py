"""Generic item files: JSONL (one item object per line) and CSV (one item per row).

JSONL lines are objects with the item keys of ``harness.loaders.items``, ``assert`` included::

    {"id": "refund", "input": "Refund order 812.", "assert": [{"type": "contains", "value": "812"}]}

Blank lines are skipped.

CSV columns (a header row is required; only ``id`` and ``input`` must be present)::

    id,input,references,context,tags,expect_abstention,group,attribute,value,choices,gold,metadata,assert

``references``, ``tags``, ``choices`` and ``gold`` hold several values separated by ``|``;
``expect_abstention`` is true/false (yes/no, 1/0, or empty for false); ``metadata`` is a JSON object and
``assert`` a JSON list of assertions.
Empty cells are absent values. Every message names the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from evaltune.harness.loaders.checks import check_keys, check_limit
from evaltune.harness.loaders.files import jsonl_records, read_text
from evaltune.harness.loaders.items import ITEM_KEYS, check_items, item_from_dict, item_label
from evaltune.harness.suite import GenerationSettings, Item, SuiteError, SuiteSpec

SEPARATOR = "|"
_LISTS = ("references", "tags", "choices")
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0", ""}


def read_items(path: Path, source: str | None = None) -> tuple[Item, ...]:
    """The checked items of a .jsonl or .csv file (unique ids, at least one item)."""
    source = source or str(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _jsonl_items(read_text(path, source), source)
    elif suffix == ".csv":
        items = _csv_items(read_text(path, source), source)
    else:
        raise SuiteError(source, f"unknown item file type '{suffix}'; use .jsonl or .csv")
    return check_items(items, source)


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """A suite named after the file, with default settings and scorers that fit its items."""
    path = Path(path)
    items = read_items(path)[: check_limit(limit, str(path))]
    return SuiteSpec(
        name=path.stem,
        items=items,
        generation=GenerationSettings(),
        scorers=default_scorers(items),
        source=str(path),
    )


def default_scorers(items: tuple[Item, ...]) -> tuple[str, ...]:
    """Scorers that fit these items: reference overlap when they have references, abstention when asked."""
    scorers: list[str] = []
    if any(item.references for item in items):
        scorers += ["exact_match", "token_f1", "rouge_l"]
    if any(item.expect_abstention for item in items):
        scorers.append("abstention")
    return tuple(scorers)


def _jsonl_items(text: str, source: str) -> list[Item]:
    return [
        item_from_dict(data, f"{source}:{line_no}", position)
        for position, (line_no, data) in enumerate(jsonl_records(text, source), start=1)
    ]


def _csv_items(text: str, source: str) -> list[Item]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    check_keys(dict.fromkeys(header), ITEM_KEYS, source, what="column")
    for required in ("id", "input"):
        if required not in header:
            raise SuiteError(source, f"the header has no '{required}' column; add it", field=required)
    items, line_no = [], 2
    for position, row in enumerate(reader, start=1):
        where = f"{source}:{line_no}"
        items.append(item_from_dict(_row_to_dict(row, where, position), where, position))
        line_no = reader.line_num + 1  # a quoted cell may span lines: the next row starts after it
    return items


def _row_to_dict(row: dict[Any, Any], source: str, position: int) -> dict[str, Any]:
    label = item_label(row, position)
    if None in row:
        raise SuiteError(
            source, "this row has more cells than the header; quote cells that contain commas", item=label
        )
    data: dict[str, Any] = {}
    for key, cell in row.items():
        if cell is None or cell == "":
            continue
        if key in _LISTS:
            data[key] = [part.strip() for part in cell.split(SEPARATOR) if part.strip()]
        elif key == "gold":
            data[key] = _cell_indices(cell, source, label)
        elif key == "expect_abstention":
            data[key] = _cell_flag(cell, source, label)
        elif key in ("metadata", "assert"):
            data[key] = _cell_json(cell, source, label, key)
        else:
            data[key] = cell
    return data


def _cell_indices(cell: str, source: str, label: str) -> list[int]:
    try:
        return [int(part) for part in cell.split(SEPARATOR)]
    except ValueError:
        raise SuiteError(
            source,
            f"'{cell}' is not a list of whole numbers separated by '|' (e.g. 0|2)",
            item=label,
            field="gold",
        ) from None


def _cell_flag(cell: str, source: str, label: str) -> bool:
    lowered = cell.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise SuiteError(source, f"'{cell}' is not true or false", item=label, field="expect_abstention")


_JSON_EXAMPLES = {"metadata": 'a JSON object such as {"k": 1}',
                  "assert": 'a JSON list such as [{"type": "contains", "value": "812"}]'}


def _cell_json(cell: str, source: str, label: str, key: str) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError as err:
        raise SuiteError(
            source, f"is not valid JSON ({err.msg}); write {_JSON_EXAMPLES[key]}", item=label, field=key
        ) from None
