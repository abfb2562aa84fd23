"""From rating records to TRL rows: each strategy, agreement gating, dedup, the held-out split, and the one
strategy registry that the command line is generated from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaltune.cli import cli
from evaltune.db import open_store
from evaltune.db.training import PreferenceDataset
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.retune import strategies as strategies_module
from evaltune.retune.datasets import export_records
from evaltune.retune.strategies import RatingRecord, Row, StrategyParams, build_rows, parameters, strategies, strategy
from evaltune.retune.train import data_warnings
from tests.fixtures.feedback_seed import rate_campaign, seed_store

PROMPT = [{"role": "user", "content": "Capital of Veltravia?"}]


def vote(rating_id: int, choice: str, item_id: int = 1, a: str = "Velt City", b: str = "I don't know.") -> RatingRecord:
    return RatingRecord(rating_id, item_id, PROMPT, choice=choice, side_a=a, side_b=b)


def single(rating_id: int, output: str, item_id: int = 1, **answers: object) -> RatingRecord:
    return RatingRecord(rating_id, item_id, PROMPT, output=output, **answers)  # type: ignore[arg-type]


def test_pairwise_takes_the_majority_side_drops_ties_and_gates_on_agreement() -> None:
    # Sides are flipped for rater 3: the pair is the same, and two of three chose "I don't know.".
    records = [vote(1, "b"), vote(2, "a"), vote(3, "a", a="I don't know.", b="Velt City"), vote(4, "tie")]
    rows, counts = build_rows(records, "pairwise", StrategyParams(holdout=0.0))
    (row,) = rows
    assert (row.chosen, row.rejected, sorted(row.rating_ids)) == ("I don't know.", "Velt City", [1, 2, 3, 4])
    assert counts["dropped_tie_or_both_bad"] == 1
    gated, counts = build_rows(records, "pairwise", StrategyParams(holdout=0.0, min_agreement=0.7))
    assert gated == [] and counts["dropped_low_agreement"] == 1
    weighted, _ = build_rows(records, "pairwise", StrategyParams(holdout=0.0, min_agreement=0.7, gating="weight"))
    assert weighted[0].weight == pytest.approx(2 / 3)


def test_likert_gap_pairs_best_and_worst_output_of_an_item_when_the_gap_is_big_enough() -> None:
    records = [single(1, "good", likert=5), single(2, "good", likert=4), single(3, "bad", likert=2),
               single(4, "meh", item_id=2, likert=3), single(5, "ok", item_id=2, likert=4)]
    rows, counts = build_rows(records, "likert-gap", StrategyParams(holdout=0.0, min_gap=2))
    (row,) = rows
    assert (row.chosen, row.rejected, sorted(row.rating_ids)) == ("good", "bad", [1, 2, 3])
    assert counts["dropped_small_gap"] == 1


def test_corrections_kto_and_sft_rows_with_dedup_and_rating_ids() -> None:
    records = [single(1, "Velt City", correction="I don't know.", thumbs=False),
               single(2, "Velt City", correction="I don't know.", thumbs=False),
               single(3, "Paris", item_id=2, thumbs=True), single(4, "same", item_id=3, correction="same")]
    pairs, counts = build_rows(records, "correction", StrategyParams(holdout=0.0))
    assert [(r.chosen, r.rejected, r.rating_ids) for r in pairs] == [("I don't know.", "Velt City", [1, 2])]
    assert counts["merged_duplicates"] == 1 and counts["dropped_correction_equals_output"] == 1
    kto, _ = build_rows(records, "kto", StrategyParams(holdout=0.0))
    assert {(r.completion, r.label) for r in kto} == {("Velt City", False), ("Paris", True),
                                                      ("I don't know.", True)}
    sft, _ = build_rows(records, "sft", StrategyParams(holdout=0.0))
    assert [(r.completion, r.rating_ids) for r in sft] == [("I don't know.", [1, 2])]


def test_the_holdout_split_is_by_item_and_reproducible() -> None:
    records = [single(i, f"out {i}", item_id=i, correction="fixed") for i in range(200)]
    rows, counts = build_rows(records, "correction", StrategyParams(holdout=0.25, seed=3))
    again, _ = build_rows(records, "correction", StrategyParams(holdout=0.25, seed=3))
    assert [r.split for r in rows] == [r.split for r in again]
    assert 25 < counts["holdout"] < 75 and counts["train"] + counts["holdout"] == 200


def test_bad_parameters_are_refused_on_construction() -> None:
    with pytest.raises(ValueError, match="holdout"):
        StrategyParams(holdout=1.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        build_rows([], "vibes", StrategyParams())


def test_guard_rails_and_exports_that_load_as_datasets(tmp_path: Path) -> None:
    records = [{"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "I don't know."}],
                "rejected": [{"role": "assistant", "content": "I don't know!"}]}] * 3
    warnings = data_warnings(records, "dpo")
    assert any("fewer than" in w for w in warnings) and any("near-identical" in w for w in warnings)
    from datasets import load_dataset

    for fmt in ("jsonl", "parquet"):
        path = export_records(records, tmp_path / f"rows.{fmt}", fmt)
        loaded = load_dataset("json" if fmt == "jsonl" else "parquet", data_files=str(path), split="train")
        assert loaded.column_names == ["prompt", "chosen", "rejected"] and loaded[0]["chosen"] == records[0]["chosen"]


def test_an_abstention_anchor_keeps_approved_answers_preferred_over_abstaining() -> None:
    records = [single(1, "Velt City", correction="I don't know.", thumbs=False),
               single(2, "Paris", item_id=2, thumbs=True), single(3, "I don't know.", item_id=3, thumbs=True)]
    rows, counts = build_rows(records, "correction", StrategyParams(holdout=0.0, abstention_anchor="I don't know."))
    assert [(r.chosen, r.rejected, r.rating_ids) for r in rows] == [
        ("I don't know.", "Velt City", [1]), ("Paris", "I don't know.", [2])]
    assert counts["approved_over_abstention"] == 1


def test_a_strategy_is_registered_with_its_name_method_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies_module, "_REGISTRY", strategies_module.strategies())  # a copy, restored after

    @strategy("first-rating", method="sft", parameters=("abstention_anchor",))
    def first_rating(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
        """Each item's first rated output, as a completion. Only for this test."""
        return [Row(records[0].item_id, records[0].prompt, completion=records[0].output, rating_ids=[1])]

    registered = strategies()["first-rating"]
    assert (registered.method, registered.help) == ("sft", "Each item's first rated output, as a completion.")
    assert [p.name for p in parameters("first-rating")] == ["min_agreement", "gating", "holdout", "seed",
                                                            "abstention_anchor"]
    rows, _ = build_rows([single(1, "Paris")], "first-rating", StrategyParams(holdout=0.0))
    assert [row.completion for row in rows] == ["Paris"]
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        strategy("x", method="ppo")
    with pytest.raises(ValueError, match="no such parameter"):
        strategy("x", method="dpo", parameters=("min_gapp",))


def test_every_parameter_carries_its_help_and_is_checked_by_name() -> None:
    for parameter in parameters():
        assert parameter.help.endswith(".") and parameter.default == getattr(StrategyParams(), parameter.name)
    with pytest.raises(ValueError, match=r"good_likert must be in \[1, 5\], got 7"):
        StrategyParams(good_likert=7)
    with pytest.raises(ValueError, match=r"bad_likert \(3\) must be below good_likert \(3\)"):
        StrategyParams(bad_likert=3, good_likert=3)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        StrategyParams(seed=1.5)  # type: ignore[arg-type]


def test_data_build_takes_its_strategies_and_options_from_the_registry() -> None:
    from evaltune.commands.data_cmd import build

    options = {param.name: param for param in build.params}
    assert list(options["strategy"].type.choices) == list(strategies())  # type: ignore[attr-defined]
    assert {p.name for p in parameters()} <= set(options)
    assert options["gating"].opts == ["--weight-by-agreement"] and options["good_likert"].opts == ["--good-likert"]
    for name, registered in strategies().items():
        assert f"{name} ({registered.method}): {registered.help}" in (options["strategy"].help or "")
    for parameter in parameters():
        assert parameter.help in (options[parameter.name].help or "")
    shown = CliRunner().invoke(cli, ["data", "build", "--help"]).output
    assert all(option in shown for option in ("--min-gap", "--weight-by-agreement", "--abstention-anchor"))


def test_data_build_stores_the_parameters_it_was_given() -> None:
    store = open_store()
    seeded = seed_store(store, items=2)
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="c", run_ids=seeded.run_ids[:1]).id
        answer = SingleAnswer(likert=3, hallucination=False)
        rate_campaign(session, seeded.users["ann1"], campaign, lambda _task: answer)
    store.close()
    result = CliRunner().invoke(cli, ["data", "build", "--campaign", str(campaign), "--strategy", "kto",
                                      "--good-likert", "3", "--bad-likert", "1", "--holdout", "0",
                                      "--weight-by-agreement"])
    assert result.exit_code == 0, result.output
    assert "dataset 1 (kto): 2 train rows" in result.output and "adjudicated_items: 0" in result.output
    store = open_store()
    with store.session_scope() as session:
        params = session.get_one(PreferenceDataset, 1).params
    store.close()
    assert (params["good_likert"], params["bad_likert"], params["gating"], params["method"]) == (3, 1, "weight",
                                                                                                 "kto")
    refused = CliRunner().invoke(cli, ["data", "build", "--campaign", str(campaign), "--strategy", "kto",
                                       "--good-likert", "2"])
    assert refused.exit_code != 0 and "bad_likert (2) must be below" in str(refused.exception or refused.output)
