"""docs/dataset_formats.md is the contract: its tables are the code's, every example in it imports, and every
export (each strategy, standard and conversational, JSON Lines and Parquet) has exactly its columns."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import load_dataset

from evaltune.db import Store, open_store
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from evaltune.retune.datasets import (
    METHOD_COLUMNS,
    SCHEMA_VERSION,
    DatasetFileError,
    build_dataset,
    dataset_records,
    export_records,
    import_dataset,
    metadata_path,
    read_metadata,
)
from evaltune.retune.strategies import StrategyParams, strategies
from tests.conftest import PROJECT_ROOT
from tests.fixtures.feedback_seed import rate_campaign, seed_store

DOC = (PROJECT_ROOT / "docs" / "dataset_formats.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"<!-- example: (\w+) (standard|conversational) -->\n```jsonl\n(.*?)```", DOC, re.S)


def _table(after: str) -> list[list[str]]:
    """The body rows of the first table after the text ``after``, as cells."""
    lines = DOC.split(after, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # past header and rule


def documented_columns() -> dict[str, list[str]]:
    return {method: columns.split(", ") for method, columns, _ in _table("## Columns per method")}


def _load(path: Path, cache: Path) -> Any:
    kind = "json" if path.suffix == ".jsonl" else "parquet"
    return load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


def test_the_documented_tables_are_the_codes() -> None:
    assert documented_columns() == {method: list(columns) for method, columns in METHOD_COLUMNS.items()}
    documented = {name.strip(): method for names, method, *_ in _table("Which strategy") for name in names.split(",")}
    assert documented == {name: strategy.method for name, strategy in strategies().items()}
    assert {(method, form) for method, form, _ in EXAMPLES} == {(m, f) for m in METHOD_COLUMNS
                                                                  for f in ("standard", "conversational")}


@pytest.mark.parametrize(("method", "form", "block"), EXAMPLES, ids=[f"{m}-{f}" for m, f, _ in EXAMPLES])
def test_every_documented_example_imports(method: str, form: str, block: str, tmp_path: Path) -> None:
    from trl.data_utils import is_conversational

    path = tmp_path / f"{method}.jsonl"
    path.write_text(block, encoding="utf-8")
    lines = [json.loads(line) for line in block.splitlines()]
    assert all(list(line) == documented_columns()[method] for line in lines)
    assert all(is_conversational(line) == (form == "conversational") for line in lines)  # TRL's own reading
    assert _load(path, tmp_path / "hf").column_names == documented_columns()[method]
    store = open_store(f"sqlite:///{tmp_path / 'import.db'}")
    with store.session_scope() as session:
        dataset = import_dataset(session, path)  # the method told by the columns alone
        assert (dataset.params["method"], dataset.counts["rows"]) == (method, len(lines))
        assert dataset_records(session, dataset.id) == lines
    store.close()


@pytest.fixture
def rated(tmp_path: Path) -> Iterator[tuple[Store, dict[str, int]]]:
    """Two campaigns on the two seeded runs, rated through the queue so that every strategy finds rows:
    run 1's outputs are approved, run 2's corrected (single outputs), and run 1 wins every A/B vote."""
    store = open_store(f"sqlite:///{tmp_path / 'formats.db'}")
    seeded = seed_store(store, items=4)

    def single(task: Task) -> SingleAnswer:
        if task.outputs[0].startswith("Run 1"):
            return SingleAnswer(likert=5, hallucination=False, thumbs=True)
        return SingleAnswer(likert=1, hallucination=True, hallucinated_span=task.outputs[0], thumbs=False,
                            correction="I don't know.")

    def pair(task: Task) -> PairAnswer:
        return PairAnswer("a" if task.outputs[0].startswith("Run 1") else "b")

    with store.session_scope() as session:
        campaigns = {"single": create_campaign(session, None, name="single", run_ids=seeded.run_ids).id,
                     "pairs": create_campaign(session, None, name="pairs", run_ids=seeded.run_ids, pairwise=True).id}
        rate_campaign(session, seeded.users["ann1"], campaigns["single"], single)
        rate_campaign(session, seeded.users["ann1"], campaigns["pairs"], pair)
    yield store, campaigns
    store.close()


@pytest.mark.parametrize("strategy", list(strategies()))
def test_every_export_has_exactly_the_documented_columns(strategy: str, rated: tuple[Store, dict[str, int]],
                                                         tmp_path: Path) -> None:
    store, campaigns = rated
    method = strategies()[strategy].method
    campaign = campaigns["pairs" if strategy == "pairwise" else "single"]
    for form in ("standard", "conversational"):
        with store.session_scope() as session:
            built = build_dataset(session, campaign, strategy, StrategyParams(holdout=0.0),
                                  chat=form == "conversational")
            records = dataset_records(session, built.id)
        assert records, f"{strategy} made no rows"
        assert isinstance(records[0]["prompt"], list) == (form == "conversational")
        for fmt in ("jsonl", "parquet"):
            path = export_records(records, tmp_path / f"{strategy}-{form}.{fmt}", fmt, method)
            loaded = _load(path, tmp_path / "hf")
            assert loaded.column_names == documented_columns()[method]
            assert [dict(row) for row in loaded] == records
            metadata = yaml.safe_load(metadata_path(path).read_text(encoding="utf-8"))
            assert metadata == {"schema_version": SCHEMA_VERSION, "written_by": "evaltune", "method": method,
                                "columns": documented_columns()[method], "form": form, "rows": len(records)}
        with store.session_scope() as session:  # and the JSON Lines export imports back as the same rows
            again = import_dataset(session, tmp_path / f"{strategy}-{form}.jsonl")
            assert again.params["schema_version"] == SCHEMA_VERSION
            assert dataset_records(session, again.id) == records


def test_an_export_refuses_rows_with_other_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row 2 has the columns prompt, chosen, rejected, weight"):
        export_records([{"prompt": "Q?", "chosen": "A.", "rejected": "B."},
                        {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "weight": 1.0}], tmp_path / "x.jsonl",
                       "jsonl")


def test_old_exports_import_newer_ones_are_refused_and_folders_load_without_the_metadata(tmp_path: Path) -> None:
    rows = [{"prompt": "Q?", "completion": "A.", "label": True}]
    old = tmp_path / "old" / "rows.jsonl"  # written before the metadata existed: no file beside it
    old.parent.mkdir()
    old.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    assert read_metadata(old) == {"schema_version": 1}
    store = open_store(f"sqlite:///{tmp_path / 'versions.db'}")
    with store.session_scope() as session:
        assert import_dataset(session, old).params == {"method": "kto", "source": str(old), "schema_version": 1}

    new = export_records(rows, tmp_path / "new" / "rows.jsonl", "jsonl")
    folder = load_dataset(str(new.parent), split="train", cache_dir=str(tmp_path / "hf"))
    assert folder.column_names == ["prompt", "completion", "label"] and folder.num_rows == 1

    metadata_path(new).write_text("schema_version: 99\nmethod: kto\n", encoding="utf-8")
    with store.session_scope() as session, pytest.raises(DatasetFileError, match="version 99, newer"):
        import_dataset(session, new)
    metadata_path(new).write_text("schema_version: one\n", encoding="utf-8")
    with store.session_scope() as session, pytest.raises(DatasetFileError, match=r"rows\.meta\.yaml: 'schema"):
        import_dataset(session, new)
    store.close()
