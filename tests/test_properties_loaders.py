"""Properties of the suite loaders, checked on generated items (hypothesis).

- Any valid item, written as a YAML suite, a JSONL file or a CSV file, loads back as the same item.
- Any mutation that breaks an item gives a ``SuiteError`` naming the file and the item, never another exception.
- Whatever a file holds (any JSON value as an item, any text as a suite file), loading either works or raises
  ``SuiteError``.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from evaltune.harness.loaders import load_suite
from evaltune.harness.loaders.items import ITEM_KEYS, item_from_dict
from evaltune.harness.suite import Item, SuiteError, item_to_dict

SETTINGS = settings(max_examples=60, deadline=None)

# Letters, digits, punctuation and symbols of any script (no control characters, no line breaks, which
# YAML folds). List entries in CSV cells are split on "|" and stripped: words have neither "|" nor spaces.
words = st.text(st.characters(categories=("L", "N", "P", "S"), exclude_characters="|"), min_size=1, max_size=12)
prose = st.builds(str.__add__, words, st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=40))
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | words


@st.composite
def plain_items(draw: st.DrawFn, item_id: str) -> dict[str, Any]:
    """A valid generation or multiple-choice item with optional fields (no counterfactual group)."""
    item: dict[str, Any] = {"id": item_id, "input": draw(prose)}
    if draw(st.booleans()):
        choices = draw(st.lists(words, min_size=2, max_size=4, unique=True))
        item["choices"] = choices
        item["gold"] = sorted(draw(st.sets(st.integers(0, len(choices) - 1), min_size=1)))
    elif draw(st.booleans()):
        item["expect_abstention"] = True
    else:
        item["references"] = draw(st.lists(words, max_size=3))
    if draw(st.booleans()):
        item["context"] = draw(prose)
    item["tags"] = draw(st.lists(words, max_size=3))
    if draw(st.booleans()):
        item["metadata"] = draw(st.dictionaries(words, json_scalars, max_size=3))
    return item


@st.composite
def item_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Items with unique ids; some pairs form a counterfactual group (same group, attribute; two values)."""
    ids = draw(st.lists(words, min_size=1, max_size=5, unique=True))
    items = [draw(plain_items(item_id)) for item_id in ids]
    for n in range(0, len(items) - 1, 2):
        if draw(st.booleans()):
            values = draw(st.lists(words, min_size=2, max_size=2, unique=True))
            for item, value in zip(items[n:n + 2], values, strict=True):
                item.update(group=f"group-{n}", attribute="gender", value=value)
    return items


def write_yaml(folder: Path, items: list[dict[str, Any]]) -> Path:
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "generated", "items": items}, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(folder: Path, items: list[Any]) -> Path:
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def write_csv(folder: Path, items: list[dict[str, Any]]) -> Path:
    """The CSV columns of ``harness.loaders.generic``: lists joined by "|", flags as true/false, metadata as JSON."""
    path = folder / "items.csv"
    columns = sorted({key for item in items for key in item} | {"id", "input"})
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for item in items:
            writer.writerow({key: _cell(value) for key, value in item.items()})
    return path


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "|".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


WRITERS = {"yaml": write_yaml, "jsonl": write_jsonl, "csv": write_csv}


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def expected(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item_to_dict(item_from_dict(item, "expected", n)) for n, item in enumerate(items, start=1)]


def _for_csv(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # An empty cell is an absent value in CSV, so an empty list cannot be told from a missing one.
    return [{key: value for key, value in item.items() if value not in ([], {})} for item in items]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@SETTINGS
@given(items=item_lists())
def test_valid_items_round_trip_through_every_file_format(fmt: str, items: list[dict[str, Any]]) -> None:
    items = _for_csv(items) if fmt == "csv" else items
    with folder() as tmp:
        suite = load_suite(WRITERS[fmt](tmp, items))
    assert [item_to_dict(item) for item in suite.items] == expected(items)


def _wrong_values() -> st.SearchStrategy[Any]:
    return st.sampled_from([None, "", "   ", 3.5, True, [], [1.5], {"a": 1}, [{"b": 2}], [""]])


@st.composite
def broken_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid items with one of them broken: a required field dropped or given a wrong type, an unknown key,
    an id repeated, or a typed field given a wrong value."""
    items = draw(item_lists())
    position = draw(st.integers(1, len(items)))
    item = items[position - 1]
    how = draw(st.sampled_from(["drop", "wrong_required", "unknown_key", "duplicate_id", "wrong_typed"]))
    if how == "drop":
        del item[draw(st.sampled_from(["id", "input"]))]
    elif how == "wrong_required":
        # "" is a valid input for a multiple-choice item (choices scored with no prompt), so not drawn here.
        item[draw(st.sampled_from(["id", "input"]))] = draw(_wrong_values().filter(lambda v: v != ""))
    elif how == "unknown_key":
        item[draw(words.filter(lambda k: k not in ITEM_KEYS))] = "x"
    elif how == "duplicate_id" and len(items) > 1:
        item["id"] = items[position - 2]["id"] if position > 1 else items[1]["id"]
    else:
        key = draw(st.sampled_from(["references", "tags", "choices", "gold", "expect_abstention", "metadata",
                                    "context"]))
        item[key] = draw(_wrong_values().filter(lambda v: _is_wrong(key, v)))
    return items


def _is_wrong(key: str, value: Any) -> bool:
    """Values that ``key`` refuses: not None or an empty value (both mean "absent"), not an explicit empty
    ``gold`` (no choice is correct), and not a value of the right type (true, a mapping, a text context)."""
    if value is None or (value in ("", [], {}) and key != "gold") or (key == "gold" and value == []):
        return False
    right_type = {"expect_abstention": bool, "metadata": dict, "context": str}.get(key)
    return right_type is None or not isinstance(value, right_type)


@pytest.mark.parametrize("fmt", ["yaml", "jsonl"])
@SETTINGS
@given(items=broken_items())
def test_a_broken_item_is_a_suite_error_naming_the_file_and_the_item(fmt: str, items: list[dict[str, Any]]) -> None:
    with folder() as tmp:
        path = WRITERS[fmt](tmp, items)
        with pytest.raises(SuiteError) as caught:
            load_suite(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert caught.value.item is not None and f"item {caught.value.item}:" in message


json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words | st.sampled_from(["id", "input", "gold"]),
                                                                 inner, max_size=5),
    max_leaves=12,
)


@SETTINGS
@given(value=json_values)
def test_any_json_value_is_an_item_or_a_suite_error(value: Any) -> None:
    try:
        item = item_from_dict(value, "generated.jsonl:1", 1)
    except SuiteError as error:
        assert str(error).startswith("generated.jsonl:1") and "\n" not in str(error)
    else:
        assert isinstance(item, Item)


@SETTINGS
@given(text=st.text(max_size=200) | st.from_regex(r"name: [a-z]+\nitems:\n(  - \{id: [a-z0-9]+, input: .*\}\n){1,3}",
                                                   fullmatch=True))
def test_any_text_as_a_suite_file_loads_or_is_a_suite_error(text: str) -> None:
    with folder() as tmp:
        path = tmp / "suite.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_suite(path)
        except SuiteError as error:
            assert str(path) in str(error) and "\n" not in str(error)
