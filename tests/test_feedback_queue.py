"""The annotation queue on SQLite and PostgreSQL: overlap, reservations, expiry, skips, each rating kind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from evaltune.db import Store
from evaltune.db.base import utcnow
from evaltune.db.ratings import Assignment, CampaignItem, Rating
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import PermissionDenied
from evaltune.feedback_ui.campaigns import CampaignError, campaigns_for, change_status, create_campaign, parse_filters
from evaltune.feedback_ui.queue import QueueError, claim_next, expire_stale, skip, submit_rating
from evaltune.feedback_ui.rating_task import load_task
from tests.fixtures.feedback_seed import Seeded, seed_store

GOOD = SingleAnswer(likert=4, hallucination=False)


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed_store(store, items=4)


def _campaign(store: Store, seeded: Seeded, **kw: object) -> int:
    options = {"name": "c", "run_ids": seeded.run_ids[:1], "overlap": 2, **kw}
    with store.session_scope() as s:
        return create_campaign(s, seeded.users["admin"], **options).id  # type: ignore[arg-type]


def _claim(store: Store, seeded: Seeded, user: str, campaign_id: int, **kw: object):  # type: ignore[no-untyped-def]
    with store.session_scope() as s:
        return claim_next(s, seeded.users[user], campaign_id, **kw)  # type: ignore[arg-type]


def _rate(store: Store, seeded: Seeded, user: str, assignment_id: int, answer: object = GOOD) -> int:
    with store.session_scope() as s:
        return submit_rating(s, seeded.users[user], assignment_id, answer)  # type: ignore[arg-type]


def test_filters_choose_the_outputs(store: Store, seeded: Seeded) -> None:
    with store.session_scope() as s:
        abstained = create_campaign(s, None, name="a", run_ids=seeded.run_ids, filters=["abstention==0"])
        tagged = create_campaign(s, None, name="t", run_ids=seeded.run_ids[:1], filters=["tag=math", "suite=capitals"])
        pairs = create_campaign(s, None, name="p", run_ids=seeded.run_ids, pairwise=True, filters=["abstention<0.5"])
        per_campaign = select(CampaignItem.campaign_id, func.count()).group_by(CampaignItem.campaign_id)
        counts = dict(s.execute(per_campaign).all())
    assert counts == {abstained.id: 4, tagged.id: 2, pairs.id: 2}  # 2 of 4 items abstain-0, in each of 2 runs
    assert parse_filters(["hallucination>0.5"]).scores == [{"scorer": "hallucination", "op": ">", "value": 0.5}]
    with pytest.raises(CampaignError, match="cannot read the filter"):
        parse_filters(["hallucination is high"])
    with pytest.raises(CampaignError, match="nothing to rate"), store.session_scope() as s:
        create_campaign(s, None, name="none", run_ids=seeded.run_ids, filters=["tag=math", "abstention>5"])
    with pytest.raises(CampaignError, match="exactly two runs"), store.session_scope() as s:
        create_campaign(s, None, name="bad", run_ids=seeded.run_ids[:1], pairwise=True)


def test_a_filter_names_only_what_the_runs_have(store: Store, seeded: Seeded) -> None:
    """A misspelt suite, tag or scorer is refused with the closest name the runs have, not 'nothing to rate'."""
    refused = {
        "tag=goe": "the filter 'tag=goe': unknown tag 'goe' (did you mean 'geo'?); the tags of the items of "
                   "run 1: geo, math",
        "suite=capital": "unknown suite 'capital' (did you mean 'capitals'?); the suites of run 1: capitals",
        "abstension==0": "unknown scorer 'abstension' (did you mean 'abstention'?); the scorers that scored run 1: "
                         "abstention, answer_match; to filter on another, score the runs with it first",
        "hallucination > 0.5": "the filter 'hallucination > 0.5': unknown scorer 'hallucination'; the scorers",
    }
    for text, message in refused.items():
        with pytest.raises(CampaignError) as error, store.session_scope() as s:
            create_campaign(s, None, name="typo", run_ids=seeded.run_ids[:1], filters=["abstention==0", text])
        assert message in str(error.value)
    with store.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CampaignItem)) == 0


def test_a_closed_campaign_hands_out_nothing_and_keeps_its_ratings(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, overlap=1)
    rated = _claim(store, seeded, "ann1", campaign)
    _rate(store, seeded, "ann1", rated.assignment_id)
    writing = _claim(store, seeded, "ann1", campaign)  # open in ann1's browser when the campaign closes
    with store.session_scope() as s:
        assert change_status(s, campaign, "closed")[1] == "open"
    for user in ("ann1", "ann2"):
        with pytest.raises(QueueError, match="is closed: it hands out no more items"):
            _claim(store, seeded, user, campaign)
    with store.session_scope() as s:
        assert campaign not in [c.id for c in campaigns_for(s, seeded.users["ann2"])]
    _rate(store, seeded, "ann1", writing.assignment_id)  # work already under way is not lost
    with store.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Rating)) == 2
        assert change_status(s, campaign, "open")[1] == "closed"
    reopened = _claim(store, seeded, "ann2", campaign)
    assert reopened is not None and reopened.campaign_item_id not in (rated.campaign_item_id,
                                                                      writing.campaign_item_id)


def test_only_admins_create_campaigns(store: Store, seeded: Seeded) -> None:
    with pytest.raises(PermissionDenied), store.session_scope() as s:
        create_campaign(s, seeded.users["ann1"], name="x", run_ids=seeded.run_ids)
    with pytest.raises(PermissionDenied), store.session_scope() as s:
        claim_next(s, seeded.users["view"], 1)


def test_overlap_k_distinct_annotators_then_the_item_leaves(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, overlap=2)
    first = _claim(store, seeded, "ann1", campaign)
    again = _claim(store, seeded, "ann1", campaign)
    assert again.assignment_id == first.assignment_id  # an open reservation is handed back, not a second one
    second = _claim(store, seeded, "ann2", campaign)
    assert second.campaign_item_id == first.campaign_item_id  # k=2: the same item goes to a second annotator
    third = _claim(store, seeded, "admin", campaign)
    assert third.campaign_item_id != first.campaign_item_id  # two holds: full for a third
    _rate(store, seeded, "ann1", first.assignment_id)
    _rate(store, seeded, "ann2", second.assignment_id)
    with pytest.raises(QueueError, match="no longer reserved"):
        _rate(store, seeded, "ann1", first.assignment_id)  # a double submit stores nothing twice
    with store.session_scope() as s:
        item = s.get(CampaignItem, first.campaign_item_id)
        assert item is not None and (item.ratings_done, item.open_holds) == (2, 0)
        assert s.scalar(select(func.count()).select_from(Rating)) == 2
    seen = set()
    while (r := _claim(store, seeded, "ann1", campaign)) is not None:
        assert r.campaign_item_id not in seen and r.campaign_item_id != first.campaign_item_id
        seen.add(r.campaign_item_id)
        _rate(store, seeded, "ann1", r.assignment_id)
    assert len(seen) == 3  # every other item once, never the one already rated


def test_reservations_expire_and_free_the_slot(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, overlap=1)
    held = _claim(store, seeded, "ann1", campaign)
    other = _claim(store, seeded, "ann2", campaign)
    assert other.campaign_item_id != held.campaign_item_id  # k=1 and held: not offered to anyone else
    later = utcnow() + timedelta(hours=2)
    _rate(store, seeded, "ann2", other.assignment_id)
    taken = _claim(store, seeded, "ann2", campaign, now=later)  # ann1's reservation has expired by then
    assert taken.campaign_item_id == held.campaign_item_id
    with pytest.raises(QueueError, match="expired and others rated"):
        _rate(store, seeded, "ann1", held.assignment_id)  # too late: the slot went to ann2
    _rate(store, seeded, "ann2", taken.assignment_id)
    with store.session_scope() as s:
        assert s.get(Assignment, held.assignment_id).status == "expired"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Rating).where(Rating.user_id == seeded.users["ann1"].id)) == 0


def test_a_late_rating_is_kept_when_the_slot_is_still_free(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, overlap=1)
    held = _claim(store, seeded, "ann1", campaign)
    with store.session_scope() as s:
        assert expire_stale(s, utcnow() + timedelta(hours=2)) == 1
    _rate(store, seeded, "ann1", held.assignment_id)
    with store.session_scope() as s:
        item = s.get(CampaignItem, held.campaign_item_id)
        assert item is not None and (item.ratings_done, item.open_holds) == (1, 0)


def test_skip_returns_the_item_to_others_but_not_to_the_skipper(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, overlap=1)
    first = _claim(store, seeded, "ann1", campaign)
    with store.session_scope() as s:
        skip(s, seeded.users["ann1"], first.assignment_id, comment="not sure")
    assert _claim(store, seeded, "ann1", campaign).campaign_item_id != first.campaign_item_id
    assert _claim(store, seeded, "ann2", campaign).campaign_item_id == first.campaign_item_id
    with store.session_scope() as s:
        stored = s.execute(select(Rating).where(Rating.skipped.is_(True))).scalar_one()
        assert (stored.likert, stored.comment) == (None, "not sure")


def test_single_rating_is_stored_field_by_field(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded)
    r = _claim(store, seeded, "ann1", campaign)
    answer = SingleAnswer(likert=2, hallucination=True, hallucinated_span="  run 1 SAYS capital 0 ", thumbs=False,
                          bias=True, unsafe=False, correction="Capital 0.", comment="made up")
    rating_id = _rate(store, seeded, "ann1", r.assignment_id, answer)
    with store.session_scope() as s:
        rating = s.get(Rating, rating_id)
        assert rating is not None
        item = s.get(CampaignItem, r.campaign_item_id)
        assert item is not None and rating.generation_id == item.generation_id
        assert (rating.likert, rating.thumbs, rating.hallucination, rating.hallucinated_span, rating.bias,
                rating.unsafe, rating.correction, rating.comment, rating.choice, rating.simulated) == (
                    2, False, True, "run 1 SAYS capital 0", True, False, "Capital 0.", "made up", None, False)
    r2 = _claim(store, seeded, "ann1", campaign)
    with pytest.raises(ValueError, match="not in the output"):
        _rate(store, seeded, "ann1", r2.assignment_id, SingleAnswer(likert=1, hallucination=True,
                                                                     hallucinated_span="the moon"))
    _rate(store, seeded, "ann1", r2.assignment_id)  # the failed attempt rolled back: the reservation is intact
    with pytest.raises(ValueError, match="quote"):
        SingleAnswer(likert=1, hallucination=True)
    with pytest.raises(ValueError, match="1 to 5"):
        SingleAnswer(likert=6, hallucination=False)
    with pytest.raises(ValueError, match="thumbs is up"):
        SingleAnswer(likert=3, hallucination=False, thumbs=1)  # type: ignore[arg-type]
    assert SingleAnswer(likert=3, hallucination=False).thumbs is None  # optional, like the flags


def test_pairwise_sides_are_recorded_and_mapped_back(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded, run_ids=seeded.run_ids, pairwise=True, overlap=1)
    while (r := _claim(store, seeded, "ann1", campaign)) is not None:
        with store.session_scope() as s:
            task = load_task(s, seeded.users["ann1"], r)
            item = s.get(CampaignItem, r.campaign_item_id)
        assert task.pairwise and len(task.outputs) == 2 and "model-" not in repr(task)  # models stay hidden
        assert task.outputs[0].startswith("Run 2" if r.flipped else "Run 1")
        rating_id = _rate(store, seeded, "ann1", r.assignment_id, PairAnswer(choice="a"))
        with store.session_scope() as s:
            rating = s.get(Rating, rating_id)
        assert item is not None and rating is not None
        shown_a = item.other_generation_id if r.flipped else item.generation_id
        assert (rating.choice, rating.side_a_generation_id) == ("a", shown_a)
        assert {rating.side_a_generation_id, rating.side_b_generation_id} == {item.generation_id,
                                                                              item.other_generation_id}
    with pytest.raises(ValueError, match="A/B"):
        other = _campaign(store, seeded)
        _rate(store, seeded, "ann2", _claim(store, seeded, "ann2", other).assignment_id, PairAnswer(choice="a"))


def test_sides_are_drawn_at_random(store: Store) -> None:
    seeded = seed_store(store, items=24, users={"admin": "admin", "ann": "annotator"})
    campaign = _campaign(store, seeded, run_ids=seeded.run_ids, pairwise=True, overlap=1)
    flips = []
    while (r := _claim(store, seeded, "ann", campaign)) is not None:
        flips.append(r.flipped)
        with store.session_scope() as s:
            skip(s, seeded.users["ann"], r.assignment_id)
    assert len(flips) == 24 and 0 < sum(flips) < 24  # all one side: chance 2 in 16.7 million


def test_nobody_else_can_use_a_reservation(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded)
    r = _claim(store, seeded, "ann1", campaign)
    with pytest.raises(QueueError):
        _rate(store, seeded, "ann2", r.assignment_id)
    with pytest.raises(PermissionDenied), store.session_scope() as s:
        load_task(s, seeded.users["ann2"], r)
