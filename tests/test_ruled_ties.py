"""Identical A/B pairs are recorded as ties by rule, never served, counted, and enter the report's win rate as ties.

Run 1's outputs against run 2's ("Run 2 says Capital i."): q0 is the same text, q1 differs only in whitespace,
q4 only by a no-break space; q2 differs in case, q3 in punctuation and q5 in words, so those three are asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evaltune.db import Store
from evaltune.db.evaluation import SuiteItem
from evaltune.db.ratings import Campaign, CampaignItem, RuledTie
from evaltune.feedback_ui.answers import PairAnswer
from evaltune.feedback_ui.queue import QueueError, claim_next
from evaltune.feedback_ui.rating_task import Task
from evaltune.feedback_ui.selection import normalised
from evaltune.metrics.stats.intervals import wilson_interval
from evaltune.reports.human import bradley_terry
from tests.conftest import Cli
from tests.fixtures.browser import launch, log_in, playwright_api, serve_app, settled
from tests.fixtures.feedback_seed import PASSWORD, Seeded, rate_campaign, seed_store

__all__ = ["playwright_api"]  # the module-scoped fixture, from tests.fixtures.browser

RUN_1_OUTPUTS = ["Run 2 says Capital 0.", "  Run 2   says\nCapital 1. \t", "Run 2 says capital 2.",
                 "Run 2 says Capital 3", "Run 2\u00a0says Capital 4.", "Run 1 says Capital 5."]
IDENTICAL = {"q0", "q1", "q4"}


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed_store(store, items=6, outputs=RUN_1_OUTPUTS)


def _prefer_run_2_except_q5(task: Task) -> PairAnswer:
    """Run 2's output wins on q2 and q3, run 1's on q5: 2 wins and 1 loss for run 2, the candidate."""
    i = int(task.item_key[1:])
    run_2_side = "a" if task.outputs[0] == f"Run 2 says Capital {i}." else "b"
    other = "b" if run_2_side == "a" else "a"
    return PairAnswer(run_2_side if task.item_key != "q5" else other)


def test_whitespace_only_differences_are_identical_others_are_not() -> None:
    assert normalised(" a\t b\n\nc \u00a0") == "a b c"
    assert normalised("Run 2 says\r\nCapital 1.") == normalised("Run 2 says Capital 1.")
    assert normalised("Capital") != normalised("capital")  # case is a difference
    assert normalised("Capital 3.") != normalised("Capital 3")  # so is punctuation
    assert normalised("ab") != normalised("a b")  # a space inside a word is not whitespace normalisation


def test_identical_pairs_are_ties_never_served(store: Store, seeded: Seeded, cli: Cli) -> None:
    code, out, err = cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--overlap", "2", "--name", "ab")
    assert code == 0, err
    assert "3 A/B pairs, overlap 2 (6 ratings wanted)" in out
    assert "3 pairs were identical and recorded as ties, not asked" in out
    with store.session_scope() as s:
        tied = s.execute(select(SuiteItem.key, RuledTie.rule).join(SuiteItem, SuiteItem.id == RuledTie.item_id)).all()
        queued = set(s.execute(select(SuiteItem.key).join(CampaignItem, CampaignItem.item_id == SuiteItem.id))
                     .scalars())
    assert sorted(tied) == [(key, "identical outputs") for key in sorted(IDENTICAL)]
    assert queued == {"q2", "q3", "q5"}
    served: list[Task] = []
    for user in ("ann1", "ann2"):
        with store.session_scope() as s:
            rate_campaign(s, seeded.users[user], 1, lambda task: served.append(task) or PairAnswer("tie"))
    assert sorted(task.item_key for task in served) == ["q2", "q2", "q3", "q3", "q5", "q5"]
    assert all(normalised(task.outputs[0]) != normalised(task.outputs[1]) for task in served)


def test_show_and_list_count_the_ties(store: Store, seeded: Seeded, cli: Cli) -> None:
    assert cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--name", "ab")[0] == 0
    code, out, _ = cli("campaigns", "show", "1")
    assert code == 0
    assert "campaign 1 'ab': A/B on runs 1, 2, open" in out
    assert "3 items, overlap 2: 0/6 ratings" in out
    assert "3 pairs were identical and recorded as ties, not asked" in out
    assert "every output that passes the filters" not in out  # the ties line replaces the default line
    code, out, _ = cli("campaigns", "list")
    assert code == 0 and "3 identical pairs tied by rule" in out
    code, _, err = cli("campaigns", "show", "9")
    assert code == 2 and "there is no campaign 9" in err


def test_a_campaign_whose_every_pair_is_identical_says_so(store: Store, cli: Cli) -> None:
    seeded = seed_store(store, items=3, outputs=[f"Run 2 says  Capital {i}. " for i in range(3)])
    code, out, err = cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--name", "same")
    assert code == 0, err
    assert "0 A/B pairs" in out
    assert "3 pairs were identical and recorded as ties, not asked; every pair was, so there is nothing to ask " \
           "and the campaign is closed" in out
    with store.session_scope() as s:
        assert s.get(Campaign, 1).status == "closed"  # type: ignore[union-attr]
        with pytest.raises(QueueError, match="is closed"):
            claim_next(s, seeded.users["ann1"], 1)


def test_ruled_ties_count_as_ties_in_the_report(store: Store, seeded: Seeded, cli: Cli) -> None:
    assert cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--overlap", "1")[0] == 0
    with store.session_scope() as s:
        assert len(rate_campaign(s, seeded.users["ann1"], 1, _prefer_run_2_except_q5)) == 3
    code, out, err = cli("report", "1", "2", "--format", "json")
    assert code == 0, err
    human = json.loads(out)["human"]
    # 2 wins, 1 loss, and the 3 identical pairs as ties: out of the win rate and its interval, like every tie.
    assert (human["ab_wins"], human["ab_losses"], human["ab_ties"], human["ab_ruled_ties"]) == (2, 1, 3, 3)
    low, high = wilson_interval(2, 3)
    assert (human["ab_win_rate"], human["ab_ci_low"], human["ab_ci_high"]) == pytest.approx((2 / 3, low, high))
    assert human["notes"][0].startswith("A/B: 3 pairs were identical and recorded as ties, not asked; each counts as "
                                        "one tie")
    # Bradley–Terry: the three ties by rule are tie votes (model-1 is side a of each) beside the three decided ones.
    votes = [(1, 0, 1.0), (1, 0, 1.0), (0, 1, 1.0), (0, 1, 0.5), (0, 1, 0.5), (0, 1, 0.5)]
    expected = bradley_terry(votes, 2)
    strengths = {s["model"]: s["strength"] for s in human["bradley_terry"]}
    assert [strengths["model-1"], strengths["model-2"]] == pytest.approx(list(expected))
    without_ties = bradley_terry(votes[:3], 2)
    assert abs(expected[1] - expected[0]) < abs(without_ties[1] - without_ties[0])  # ties pull them together
    code, markdown, _ = cli("report", "1", "2")
    assert code == 0
    assert "ties 3, both bad 0" in markdown
    assert "- A/B: 3 pairs were identical and recorded as ties, not asked" in markdown


def test_ties_are_stored_with_the_campaign_and_go_with_it(store: Store, seeded: Seeded) -> None:
    from evaltune.feedback_ui.campaigns import create_campaign, ruled_ties_by_campaign

    with store.session_scope() as s:
        first = create_campaign(s, None, name="a", run_ids=seeded.run_ids, pairwise=True).id
        second = create_campaign(s, None, name="b", run_ids=seeded.run_ids, pairwise=True,
                                 filters=["tag=geo"]).id  # q0, q2, q4: two identical
        single = create_campaign(s, None, name="c", run_ids=seeded.run_ids).id
    with store.session_scope() as s:
        assert ruled_ties_by_campaign(s) == {first: 3, second: 2}
        assert s.scalar(select(func.count()).where(CampaignItem.campaign_id == single)) == 12  # nothing tied
        s.delete(s.get(Campaign, first))
    with store.session_scope() as s:
        assert ruled_ties_by_campaign(s) == {second: 2}


@pytest.mark.slow
def test_the_rate_page_never_shows_an_identical_pair(playwright_api: Any, tmp_path: Path) -> None:
    """In the real app: q0 and q1 are identical pairs, so the annotator's first (and only) item is q2. Were the
    ties queued, q0 (position 0) would come first and three items would be left."""
    from playwright.sync_api import expect

    from evaltune.db import open_store
    from evaltune.feedback_ui.campaigns import create_campaign

    db_url = f"sqlite:///{tmp_path / 'ties.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=3, outputs=RUN_1_OUTPUTS[:3], users={"ann": "annotator"})
    with store.session_scope() as s:
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, pairwise=True, overlap=1)
    store.close()
    with serve_app(db_url, tmp_path) as url:
        browser = launch(playwright_api)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            log_in(page, expect, url, "ann", PASSWORD)
            settled(page, expect, "left for you: 1")
            expect(page.get_by_text("Item q2", exact=False)).to_be_visible()
            assert page.get_by_text("Item q0", exact=False).count() == 0
            assert page.get_by_text("Item q1", exact=False).count() == 0
        finally:
            browser.close()
