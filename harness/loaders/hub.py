"""Hugging Face datasets by id (``hf:owner/name``), for when the machine is online.

Rows become items through a column mapping ``{item key: dataset column}``; item keys that the
mapping leaves out are read from the column of the same name when there is one. Rows are checked
like any other item (see ``harness.loaders.items``); an item without an ``id`` column gets
``"{dataset}-{split}-{row}"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaltune import settings
from evaltune.harness.loaders.checks import check_keys, check_limit, describe
from evaltune.harness.loaders.generic import default_scorers
from evaltune.harness.loaders.items import ITEM_KEYS, check_items, item_from_dict
from evaltune.harness.suite import GenerationSettings, SuiteError, SuiteSpec


def load_hub(
    dataset: str,
    *,
    split: str = "test",
    config: str | None = None,
    columns: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> SuiteSpec:
    """A suite from ``datasets.load_dataset(dataset, config, split=split)``.

    Raises ``SuiteError`` when the data cannot be had (offline, unknown id, no network), saying to
    download it where there is a network and to pass the file's path instead.
    """
    source = f"hf:{dataset}"
    limit = check_limit(limit, source)
    mapping = _check_columns(columns, source)
    rows = _download(dataset, split, config, source)
    _check_mapped_columns(rows, mapping, source)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    items = [
        item_from_dict(_row_to_dict(row, mapping, f"{dataset}-{split}-{n}"), f"{source}[{split}]", n + 1)
        for n, row in enumerate(rows)
    ]
    checked = check_items(items, source)
    return SuiteSpec(
        name=dataset.rsplit("/", 1)[-1],
        items=checked,
        generation=GenerationSettings(),
        scorers=default_scorers(checked),
        source=source,
    )


def _check_columns(columns: Any, source: str) -> dict[str, str]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise SuiteError(
            source, f"must map item keys to column names, not {describe(columns)}", field="columns"
        )
    check_keys(columns, ITEM_KEYS, source, what="item key in columns")
    return dict(columns)


def _download(dataset: str, split: str, config: str | None, source: str) -> Any:
    fix = (
        "download the data on a machine with network access (e.g. datasets.load_dataset(...).to_json(...)) "
        "and pass the file's path instead (a .jsonl or .csv file, or a suite YAML with items_file)"
    )
    try:
        import datasets
    except ImportError:
        raise SuiteError(
            source, f"the 'datasets' package is not installed; pip install datasets, or {fix}"
        ) from None
    try:
        return datasets.load_dataset(dataset, config, split=split)
    except (
        Exception
    ) as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError, ...)
        reason = "the Hugging Face hub is offline here (HF_HUB_OFFLINE is set)" if settings.hub_offline() else str(err)
        raise SuiteError(
            source, f"cannot load dataset '{dataset}' split '{split}': {reason}; {fix}"
        ) from None




def _check_mapped_columns(rows: Any, mapping: dict[str, str], source: str) -> None:
    for key, column in mapping.items():
        if column not in rows.column_names:
            raise SuiteError(
                source,
                f"maps '{key}' to column '{column}', which the dataset lacks; "
                f"its columns: {', '.join(rows.column_names)}",
                field="columns",
            )


def _row_to_dict(row: Mapping[str, Any], mapping: dict[str, str], default_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ITEM_KEYS:
        column = mapping.get(key, key)
        if column in row and row[column] is not None:
            data[key] = row[column]
    if mapping.get("id") is None and "id" not in data:
        data["id"] = default_id
    return data
