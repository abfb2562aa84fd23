"""Annotators working at the same moment, each in their own thread and database session.

On PostgreSQL (and SQLite): no item is ever held or rated by more annotators than its overlap, no annotator
gets an item twice, every rating is stored exactly once, and a double submit stores one rating.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from evaltune.db import Store
from evaltune.db.ratings import Assignment, CampaignItem, Rating
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import QueueError, claim_next, submit_rating
from evaltune.feedback_ui.transactions import in_transaction
from tests.fixtures.feedback_seed import Seeded, seed_store

ANNOTATORS = {f"ann{i}": "annotator" for i in range(4)}
GOOD = SingleAnswer(likert=3, hallucination=False)


def _campaign(store: Store, seeded: Seeded, overlap: int) -> int:
    with store.session_scope() as s:
        return create_campaign(s, None, name="race", run_ids=seeded.run_ids, overlap=overlap).id


def _violations(store: Store, overlap: int) -> list[str]:
    """Invariants read in one snapshot: holds + ratings within overlap, counters equal to the rows."""
    with store.sessions() as s:
        over = s.execute(select(CampaignItem.id).where(
            (CampaignItem.ratings_done + CampaignItem.open_holds > overlap) | (CampaignItem.open_holds < 0))).all()
        open_per_item = s.execute(
            select(Assignment.campaign_item_id).where(Assignment.status == "open")
            .group_by(Assignment.campaign_item_id).having(func.count() > overlap)).all()
    return [f"item {row[0]} over capacity" for row in over] + [f"item {row[0]} held > k" for row in open_per_item]


def _annotate(store: Store, account: Account, campaign_id: int, start: threading.Barrier,
              claimed: list[int], errors: list[BaseException]) -> None:
    try:
        start.wait()
        while (reservation := in_transaction(store, lambda s: claim_next(s, account, campaign_id))) is not None:
            claimed.append(reservation.campaign_item_id)
            in_transaction(store, lambda s: submit_rating(s, account, reservation.assignment_id, GOOD))
    except BaseException as error:  # surfaced in the main thread
        errors.append(error)


@pytest.mark.parametrize("overlap", [1, 2])
def test_concurrent_annotators_never_share_a_slot_and_lose_nothing(store: Store, overlap: int) -> None:
    seeded = seed_store(store, items=15, users=ANNOTATORS)  # 2 runs x 15 items = 30 campaign items
    campaign_id = _campaign(store, seeded, overlap)
    start = threading.Barrier(len(ANNOTATORS))
    claimed: dict[str, list[int]] = {name: [] for name in ANNOTATORS}
    errors: list[BaseException] = []
    workers = [threading.Thread(target=_annotate, args=(store, seeded.users[name], campaign_id, start,
                                                         claimed[name], errors)) for name in ANNOTATORS]
    for worker in workers:
        worker.start()
    seen: list[str] = []
    while any(worker.is_alive() for worker in workers):
        seen += _violations(store, overlap)  # watched while they work, not only at the end
    for worker in workers:
        worker.join()
    assert errors == [] and seen == [] and _violations(store, overlap) == []
    for items in claimed.values():
        assert len(items) == len(set(items))  # nobody got the same item twice
    per_item = Counter(item for items in claimed.values() for item in items)
    assert len(per_item) == 30 and set(per_item.values()) == {overlap}
    with store.sessions() as s:
        stored = Counter(s.execute(select(Rating.campaign_item_id)).scalars())
        counters = dict(s.execute(select(CampaignItem.id, CampaignItem.ratings_done)).all())
        holds = s.execute(select(func.sum(CampaignItem.open_holds))).scalar_one()
    assert stored == per_item  # every rating stored exactly once
    assert counters == dict(per_item) and holds == 0


def test_a_double_submit_at_the_same_moment_stores_one_rating(store: Store) -> None:
    seeded = seed_store(store, items=2, users={"ann": "annotator"})
    campaign_id = _campaign(store, seeded, 1)
    account = seeded.users["ann"]
    reservation = in_transaction(store, lambda s: claim_next(s, account, campaign_id))
    assert reservation is not None
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def submit() -> None:
        start.wait()
        try:
            in_transaction(store, lambda s: submit_rating(s, account, reservation.assignment_id, GOOD))
            outcomes.append("stored")
        except QueueError:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "stored"]
    with store.sessions() as s:
        assert s.execute(select(func.count()).select_from(Rating)).scalar_one() == 1
        assert s.get(CampaignItem, reservation.campaign_item_id).ratings_done == 1  # type: ignore[union-attr]
