"""Adjudications count: a dataset built from a campaign follows the admin's decision on an adjudicated item,
not the annotators' votes, and records how many items it settled."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from evaltune.db import Store
from evaltune.db.ratings import CampaignItem
from evaltune.feedback_ui.adjudication import adjudicate
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from evaltune.retune.datasets import build_dataset, dataset_records
from evaltune.retune.strategies import StrategyParams
from tests.fixtures.feedback_seed import Seeded, rate_campaign, seed_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def _items(store: Store, campaign_id: int) -> list[CampaignItem]:
    with store.session_scope() as session:
        return list(session.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign_id)
                                    .order_by(CampaignItem.position)))


def _rate(store: Store, seeded: Seeded, campaign_id: int, answer_for: object) -> None:
    with store.session_scope() as session:
        for annotator in ("ann1", "ann2"):
            rate_campaign(session, seeded.users[annotator], campaign_id, answer_for)  # type: ignore[arg-type]


def test_votes_say_a_the_admin_says_b_and_the_row_prefers_b(store: Store) -> None:
    seeded = seed_store(store, items=3)
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="ab", run_ids=seeded.run_ids, pairwise=True, overlap=2).id

    def run_1_wins(task: Task) -> PairAnswer:  # both annotators, on every item, whichever side run 1 is shown on
        return PairAnswer("a" if task.outputs[0].startswith("Run 1") else "b")

    _rate(store, seeded, campaign, run_1_wins)
    settled = _items(store, campaign)[1]
    with store.session_scope() as session:  # "second" is the item's other output: run 2's
        adjudicate(session, seeded.users["admin"], settled.id, {"choice": "second"}, note="run 1 is wrong here")
        dataset = build_dataset(session, campaign, "pairwise", StrategyParams(holdout=0.0))
        rows = dataset_records(session, dataset.id)
        counts = dict(dataset.counts)
    winners = [row["chosen"][0]["content"] for row in rows]
    assert winners == ["Run 1 says Capital 0.", "Run 2 says Capital 1.", "Run 1 says Capital 2."]
    assert counts["adjudicated_items"] == 1 and counts["ratings"] == 6


def test_a_decision_replaces_the_answers_it_settles_and_only_those(store: Store) -> None:
    seeded = seed_store(store, items=3)
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="one", run_ids=seeded.run_ids[:1], overlap=2).id
    approve = SingleAnswer(likert=5, hallucination=False, thumbs=True, correction="Capital.")
    _rate(store, seeded, campaign, lambda _task: approve)
    first, second, _ = _items(store, campaign)
    with store.session_scope() as session:
        adjudicate(session, seeded.users["admin"], first.id, {"thumbs": False})  # overrules two thumbs up
        adjudicate(session, seeded.users["admin"], second.id, {"bias": True})  # no strategy reads bias
        kto = build_dataset(session, campaign, "kto", StrategyParams(holdout=0.0), chat=False)
        labels = {row["completion"]: row["label"] for row in dataset_records(session, kto.id)}
        sft = build_dataset(session, campaign, "sft", StrategyParams(holdout=0.0), chat=False)
        corrections = dataset_records(session, sft.id)
        counts = (kto.counts["adjudicated_items"], sft.counts["adjudicated_items"])
    assert labels == {"Run 1 says Capital 0.": False, "Run 1 says Capital 1.": True, "Run 1 says Capital 2.": True,
                      "Capital.": True}
    assert [row["completion"] for row in corrections] == ["Capital."] * 3  # corrections are not adjudicated
    assert counts == (1, 1)
