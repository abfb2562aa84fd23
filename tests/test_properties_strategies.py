"""Properties of the rating -> training-row strategies (``retune.strategies``), on generated ratings (hypothesis).

For any set of ratings and any valid parameters, every strategy's rows:
- only hold outputs that were rated (or corrections written by raters, or the abstention anchor), for their item;
- keep the ids of real ratings of their own item, each once;
- prefer one answer over a different one (chosen != rejected, also after trimming spaces);
- hold no duplicate row, and are the same when built twice with the same seed;
- are no more than the ratings allow, and their counts add up;
- split by item: no item is both in train and held out.
Invalid parameters and unknown strategies raise ``ValueError`` and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaltune.retune.strategies import RatingRecord, Row, StrategyParams, build_rows, strategies

SETTINGS = settings(max_examples=80, deadline=None)
STRATEGIES = list(strategies())  # every registered strategy
ANCHOR = "I don't know."
# Few distinct texts, so that raters often judge the same output and answers repeat (ties, duplicates, merges).
texts = st.sampled_from(["Paris.", "Paris. ", "Lyon.", "I don't know.", "Rome", " ", "Velt City"])


@st.composite
def rating_sets(draw: st.DrawFn) -> list[RatingRecord]:
    """Ratings of up to four items: single-output ratings (Likert, thumbs, flags, corrections) and A/B votes."""
    prompts = {item: draw(st.sampled_from([f"Question {item}?", [{"role": "user", "content": f"Q{item}?"}]]))
               for item in range(1, 5)}
    records = []
    for rating_id in range(1, draw(st.integers(0, 24)) + 1):
        item = draw(st.integers(1, 4))
        if draw(st.booleans()):
            records.append(RatingRecord(rating_id, item, prompts[item], choice=draw(
                st.sampled_from(["a", "b", "tie", "both_bad"])), side_a=draw(texts), side_b=draw(texts)))
        else:
            records.append(RatingRecord(
                rating_id, item, prompts[item], output=draw(texts), generation_id=draw(st.integers(1, 9)),
                likert=draw(st.none() | st.integers(1, 5)), thumbs=draw(st.none() | st.booleans()),
                hallucination=draw(st.none() | st.booleans()), correction=draw(st.none() | texts)))
    return records


params = st.builds(
    StrategyParams,
    min_gap=st.floats(0.5, 4.0), min_agreement=st.floats(0.0, 1.0), gating=st.sampled_from(["drop", "weight"]),
    holdout=st.floats(0.0, 0.9), seed=st.integers(0, 1000), abstention_anchor=st.none() | st.just(ANCHOR),
    good_likert=st.integers(3, 5), bad_likert=st.integers(1, 2),
)


def answers_of(records: Sequence[RatingRecord], item_id: int, anchor: str | None) -> set[str]:
    """Every text a row of ``item_id`` may hold: rated outputs, both A/B sides, corrections, the anchor."""
    found = {anchor.strip()} if anchor and anchor.strip() else set()
    for r in records:
        if r.item_id == item_id:
            found |= {r.output, (r.correction or "").strip(), r.side_a or "", r.side_b or ""}
    return found - {""}


def _key(row: Row) -> str:
    return json.dumps([row.prompt, row.chosen, row.rejected, row.completion, row.label], sort_keys=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
@SETTINGS
@given(records=rating_sets(), knobs=params)
def test_rows_come_from_the_ratings_and_are_well_formed(
    strategy: str, records: list[RatingRecord], knobs: StrategyParams
) -> None:
    rows, counts = build_rows(records, strategy, knobs)
    by_id = {r.rating_id: r for r in records}
    method = strategies()[strategy].method
    for row in rows:
        allowed = answers_of(records, row.item_id, knobs.abstention_anchor)
        assert row.rating_ids and len(set(row.rating_ids)) == len(row.rating_ids)
        assert all(by_id[i].item_id == row.item_id for i in row.rating_ids)
        assert row.prompt == by_id[row.rating_ids[0]].prompt
        assert row.split in ("train", "holdout") and 0.0 <= row.weight <= 1.0
        if method == "dpo":
            assert row.chosen in allowed and row.rejected in allowed
            assert row.chosen.strip() != row.rejected.strip()
            assert row.completion is None and row.label is None
        else:
            assert row.completion in allowed and row.chosen is None and row.rejected is None
            assert (row.label is not None) == (method == "kto")
    assert len({_key(row) for row in rows}) == len(rows)
    assert len(rows) <= 2 * len(records)
    assert counts["ratings"] == len(records) and counts["train"] + counts["holdout"] == len(rows)


@pytest.mark.parametrize("strategy", STRATEGIES)
@SETTINGS
@given(records=rating_sets(), knobs=params)
def test_rows_are_reproducible_and_split_by_item(
    strategy: str, records: list[RatingRecord], knobs: StrategyParams
) -> None:
    rows, counts = build_rows(records, strategy, knobs)
    again, counts_again = build_rows(list(records), strategy, knobs)
    assert (again, counts_again) == (rows, counts)
    held_out = {row.item_id for row in rows if row.split == "holdout"}
    assert not held_out & {row.item_id for row in rows if row.split == "train"}
    if knobs.holdout == 0.0:
        assert not held_out


@SETTINGS
@given(records=rating_sets(), knobs=params)
def test_votes_never_make_more_pairs_than_pairs_were_voted_on(records: list[RatingRecord],
                                                             knobs: StrategyParams) -> None:
    rows, counts = build_rows(records, "pairwise", knobs)
    decisive = [r for r in records if r.choice in ("a", "b")]
    assert len(rows) <= len({(r.item_id, *sorted((r.side_a or "", r.side_b or ""))) for r in decisive})
    assert counts.get("dropped_tie_or_both_bad", 0) <= sum(r.choice in ("tie", "both_bad") for r in records)


bad_numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)


@SETTINGS
@given(min_gap=bad_numbers, min_agreement=bad_numbers, holdout=bad_numbers, gating=st.text(max_size=8),
       strategy=st.text(max_size=12))
def test_only_value_errors_for_bad_parameters_or_strategies(min_gap: Any, min_agreement: Any, holdout: Any,
                                                           gating: str, strategy: str) -> None:
    try:
        knobs = StrategyParams(min_gap=min_gap, min_agreement=min_agreement, holdout=holdout, gating=gating)
        build_rows([RatingRecord(1, 1, "Q?", output="A.", thumbs=True)], strategy, knobs)
    except ValueError as error:
        assert str(error) and "\n" not in str(error)
