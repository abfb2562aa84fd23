"""The Adjudicate page as an admin works in it (streamlit.testing): the prompt, context and references beside the
outputs, every rating in words, the spans annotators marked highlighted in the output, the decision in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaltune.db import Store
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from evaltune.feedback_ui.spans_view import highlighted_html, valid_spans
from tests.fixtures.app_pages import errors, html_blocks, open_page, texts
from tests.fixtures.feedback_seed import HOSTILE, Seeded, rate_campaign, seed_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def _rate_single(store: Store, seeded: Seeded, campaign: int) -> None:
    def ann1(task: Task) -> SingleAnswer:
        return SingleAnswer(likert=5, hallucination=False)

    def ann2(task: Task) -> SingleAnswer:  # marks "Capital N" and "says" in the output shown
        output = task.outputs[0]
        capital = output.index("Capital")
        says = output.index("says")
        return SingleAnswer.marked(output, 1, [(capital, len(output) - 1), (says, says + 4)],
                                   comment="no such capital")

    with store.session_scope() as s:
        rate_campaign(s, seeded.users["ann1"], campaign, ann1)
        rate_campaign(s, seeded.users["ann2"], campaign, ann2)


def test_adjudicate_shows_the_prompt_the_ratings_in_words_and_the_marked_spans(store: Store) -> None:
    seeded = seed_store(store, items=2)
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=2).id
    _rate_single(store, seeded, campaign)

    at = open_page("admin", "adjudicate")
    shown = texts(at)
    assert not errors(at)
    assert "Question 0: what is the capital of country 0?" in shown  # the prompt
    assert "Country 0 has the capital Capital 0." in shown and "Capital 0" in shown  # context, reference
    assert "**ann1**: 5 excellent, hallucination: no" in shown
    assert ("**ann2**: 1 very poor, hallucination: yes — span: «says» … «Capital 0» (highlighted in the output), "
            "comment: «no such capital»") in shown
    assert "{" not in shown  # no raw dict anywhere: neither ratings nor a decision
    assert "Current decision:** no decision yet" in shown
    [block] = html_blocks(at)  # the first output, with both spans marked
    assert block.count("<mark") == 2 and ">says</mark>" in block and ">Capital 0</mark>" in block

    at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Overall score")).set_value(2)
    at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Hallucination")).set_value(True)
    next(b for b in at.button if b.label == "Save decision").click()
    at.run()
    assert not errors(at)
    assert "Current decision:** 2 poor, hallucination: yes" in texts(at)


def test_pairwise_ratings_are_said_as_which_run_is_better(store: Store) -> None:
    seeded = seed_store(store, items=2)
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="ab", run_ids=seeded.run_ids, pairwise=True, overlap=2).id

    def side_of(run: str) -> Any:
        return lambda task: PairAnswer("a" if task.outputs[0].startswith(run) else "b")

    with store.session_scope() as s:
        rate_campaign(s, seeded.users["ann1"], campaign, side_of("Run 1"))
        rate_campaign(s, seeded.users["ann2"], campaign, side_of("Run 2"))

    at = open_page("admin", "adjudicate")
    shown = texts(at)
    r1, r2 = seeded.run_ids
    assert f"**ann1**: first (run {r1}) is better" in shown and f"**ann2**: second (run {r2}) is better" in shown
    assert not html_blocks(at)  # nothing marked on A/B outputs: both shown as plain text
    choice = next(s for s in at.selectbox if s.label == "Which output is better")
    assert choice.options[1:] == [f"first (run {r1}) is better", f"second (run {r2}) is better", "tie", "both bad"]


def test_marked_spans_in_hostile_output_stay_text() -> None:
    start = HOSTILE.index("<script>")
    block = highlighted_html(HOSTILE, [[start, start + len("<script>")], [0, 3], ["x", 2], [5, 10_000]])
    assert "<script" not in block and "<img" not in block and "<b>" not in block
    assert '&lt;script&gt;</mark>' in block and "onerror=&quot;" in block
    assert valid_spans([[0, 3], [2, 5], [7, 7], [True, 2], None], 10) == [(0, 5)]  # merged; bad ones dropped
