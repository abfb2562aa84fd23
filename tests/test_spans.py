"""Unsupported spans marked in the output: offsets checked against the output the annotator saw, stored with the
quoted text, and exported with their offsets (``evaltune ratings export``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from evaltune.db import Store
from evaltune.db.ratings import Rating
from evaltune.feedback_ui.answers import SingleAnswer, answer_from_form, check_spans, spans_from_utf16
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.export import read_ratings
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.feedback_ui.rating_task import load_task
from tests.conftest import invoke_main
from tests.fixtures.feedback_seed import Seeded, seed_store

OUTPUT = "Lima is the capital. It has 90 million people. 😀 Founded by Zorg."


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed_store(store, items=2, outputs=[OUTPUT], users={"ann": "annotator"})


def _span(text: str) -> tuple[int, int]:
    start = OUTPUT.index(text)
    return start, start + len(text)


def test_marked_spans_are_sorted_and_quoted_from_the_output() -> None:
    people, zorg = _span("It has 90 million people."), _span("Founded by Zorg.")
    answer = SingleAnswer.marked(OUTPUT, 2, [zorg, people])
    assert answer.hallucination and answer.spans == (people, zorg)
    assert answer.hallucinated_span == "It has 90 million people. … Founded by Zorg."
    clean = SingleAnswer.marked(OUTPUT, 5, [])
    assert (clean.hallucination, clean.spans, clean.hallucinated_span) == (False, None, None)


@pytest.mark.parametrize(("spans", "words"), [
    ([(3, 3)], "empty"),
    ([(5, 2)], "empty or negative"),
    ([(-1, 4)], "empty or negative"),
    ([(0, 10), (5, 12)], "overlap"),
    ([(0, len(OUTPUT) + 1)], "past the end"),
    ([(4, 5)], "only whitespace"),
    ([(0, "4")], "pair of character offsets"),
])
def test_spans_that_do_not_fit_the_output_are_refused(spans: list[tuple[int, int]], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SingleAnswer.marked(OUTPUT, 3, spans)


def test_browser_offsets_count_emoji_as_two_units() -> None:
    zorg = "Founded by Zorg."
    js_start = OUTPUT.encode("utf-16-le").decode("utf-16-le").index(zorg) + 1  # one more unit: the emoji is two
    assert spans_from_utf16(OUTPUT, [[js_start, js_start + len(zorg)]]) == [_span(zorg)]
    emoji = OUTPUT.index("😀")
    with pytest.raises(ValueError, match="splits a character"):
        spans_from_utf16(OUTPUT, [[emoji + 1, emoji + 3]])  # between the emoji's two halves
    with pytest.raises(ValueError, match="outside the output"):
        spans_from_utf16(OUTPUT, [[0, 999]])


def test_the_form_answer_is_checked_field_by_field() -> None:
    answer = answer_from_form({"likert": 2, "spans": [[0, 4]], "thumbs": False, "bias": True, "comment": "x"},
                              OUTPUT, pairwise=False)
    assert isinstance(answer, SingleAnswer) and answer.spans == ((0, 4),) and answer.hallucinated_span == "Lima"
    for values, words in [({"likert": "2"}, "1 to 5"), ({"likert": 3, "bias": "yes"}, "true or false"),
                          ({"likert": 3, "spans": [3, 4]}, "list of"), ({"likert": 3, "thumbs": 1}, "thumbs")]:
        with pytest.raises(ValueError, match=words):
            answer_from_form(values, OUTPUT, pairwise=False)
    with pytest.raises(ValueError, match="choose one of"):
        answer_from_form({"choice": "maybe"}, OUTPUT, pairwise=True)


def test_the_store_checks_spans_against_the_stored_output(store: Store, seeded: Seeded) -> None:
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="spans", run_ids=seeded.run_ids[:1], overlap=1)
    ann = seeded.users["ann"]
    with store.session_scope() as s:
        held = claim_next(s, ann, campaign.id)
        assert held is not None
        shown = load_task(s, ann, held).outputs[0]
    # An answer marked on another text than the stored output is refused; the transaction stores nothing.
    other = SingleAnswer.marked("Lima is X", 1, [(0, 9)])
    with pytest.raises(ValueError, match="do not hold the quoted text"), store.session_scope() as s:
        submit_rating(s, ann, held.assignment_id, other)
    with store.session_scope() as s:
        assert s.execute(select(Rating)).first() is None
        held = claim_next(s, ann, campaign.id)
        assert held is not None
        submit_rating(s, ann, held.assignment_id, SingleAnswer.marked(shown, 2, [_span("Founded by Zorg.")]))
    with store.session_scope() as s:
        rating = s.execute(select(Rating)).scalar_one()
        assert rating.spans == [list(_span("Founded by Zorg."))] and rating.hallucinated_span == "Founded by Zorg."


def test_spans_are_exported_with_their_offsets(store: Store, seeded: Seeded, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="spans", run_ids=seeded.run_ids[:1], overlap=1)
        held = claim_next(s, seeded.users["ann"], campaign.id)
        assert held is not None
        marked = [_span("Lima"), _span("Founded by Zorg.")]
        submit_rating(s, seeded.users["ann"], held.assignment_id, SingleAnswer.marked(OUTPUT, 2, marked))
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"ratings.{fmt}"
        code, printed, err = invoke_main(["ratings", "export", "--format", fmt, "-o", str(out)], monkeypatch, capsys)
        assert code == 0 and "wrote 1 ratings" in printed, err
        row = read_ratings(out).iloc[0]
        assert row["spans"] == [list(span) for span in marked] and row["schema_version"] == 3
        assert [row["output"][start:end] for start, end in row["spans"]] == ["Lima", "Founded by Zorg."]
    first = json.loads((tmp_path / "ratings.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["spans"] == [[0, 4], list(_span("Founded by Zorg."))]


def test_check_spans_names_the_span_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"span \[0, 99\] runs past the end .* mark text inside the output"):
        check_spans("short", [(0, 99)])
