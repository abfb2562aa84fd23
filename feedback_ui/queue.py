"""The annotation queue: reserve the next item for an annotator, store a rating or a skip, expire stale holds.

The rules hold under concurrent sessions because SQL enforces them, not Python checks made beforehand:

- an item never has more than ``overlap`` ratings plus open reservations (``ratings_done + open_holds``);
- nobody holds or rates the same item twice (unique (item, user) on assignments and on ratings);
- every hold is released exactly once, by a rating, a skip or expiry, each an ``UPDATE ... WHERE status = 'open'``
  that only one transaction can win.

PostgreSQL picks the next item with ``SELECT ... FOR UPDATE SKIP LOCKED``: annotators claiming at the same
moment take different rows instead of queueing behind one, and when a row changed after the statement began,
PostgreSQL re-checks the overlap condition on its new version. SQLite picks and holds in one conditional
``UPDATE``, and runs one writer at a time; every transaction here starts with a write, so it takes the write
lock (waiting up to the busy timeout) before it reads anything.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, exists, select, update
from sqlalchemy.orm import Session, aliased

from evaltune import settings
from evaltune.db.base import utcnow
from evaltune.db.evaluation import Generation
from evaltune.db.queries import dialect_insert
from evaltune.db.ratings import Assignment, Campaign, CampaignItem, Rating
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import Account, require_role
from evaltune.feedback_ui.campaigns import may_rate
from evaltune.feedback_ui.transactions import dialect_of

_NO_SYNC = {"synchronize_session": False}
# What a single-output answer stores: every field of SingleAnswer, under the same name on Rating.
SINGLE_FIELDS = tuple(field.name for field in fields(SingleAnswer))


class QueueError(Exception):
    """The action cannot be done (campaign closed, reservation lost, already rated); safe to show."""


@dataclass(frozen=True)
class Reservation:
    """An item held for one annotator until ``expires_at``; ``flipped`` swaps the A/B sides."""

    assignment_id: int
    campaign_item_id: int
    expires_at: datetime
    flipped: bool


def reservation_time() -> timedelta:
    """How long a reservation lasts: ``$EVALTUNE_RESERVATION_MINUTES`` (default 30)."""
    return settings.reservation()


def expire_stale(session: Session, now: datetime | None = None) -> int:
    """Mark reservations past their expiry as expired and release their holds; returns how many."""
    stmt = (
        update(Assignment)
        .where(Assignment.status == "open", Assignment.expires_at <= (now or utcnow()))
        .values(status="expired")
        .returning(Assignment.campaign_item_id)
        .execution_options(**_NO_SYNC)
    )
    released = Counter(session.execute(stmt).scalars())
    for item_id in sorted(released):  # one lock order for every session: no deadlock between two sweeps
        session.execute(
            update(CampaignItem)
            .where(CampaignItem.id == item_id)
            .values(open_holds=CampaignItem.open_holds - released[item_id])
            .execution_options(**_NO_SYNC)
        )
    return sum(released.values())


def _open_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise QueueError(f"there is no campaign {campaign_id}")
    if campaign.status != "open":  # closed: no more items are handed out; what was rated stays
        raise QueueError(f"campaign {campaign.name!r} is {campaign.status}: it hands out no more items (an admin "
                         "can reopen it)")
    return campaign


def _current(session: Session, user_id: int, campaign_id: int, until: datetime) -> Reservation | None:
    """The user's open reservation in this campaign, its expiry pushed to ``until``."""
    row = session.execute(
        select(Assignment)
        .join(CampaignItem, CampaignItem.id == Assignment.campaign_item_id)
        .where(Assignment.user_id == user_id, Assignment.status == "open", CampaignItem.campaign_id == campaign_id)
        .order_by(Assignment.id)
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    row.expires_at = until
    return Reservation(row.id, row.campaign_item_id, until, row.flipped)


def _hold_next_item(session: Session, user_id: int, campaign: Campaign) -> int | None:
    """Add one hold to the first item this user may take, and return its id (None: nothing left for them)."""
    item = aliased(CampaignItem)
    pick = (
        select(item.id)
        .where(
            item.campaign_id == campaign.id,
            item.ratings_done + item.open_holds < campaign.overlap,
            ~exists().where(
                Assignment.campaign_item_id == item.id,
                Assignment.user_id == user_id,
                Assignment.status != "expired",
            ),
            ~exists().where(Rating.campaign_item_id == item.id, Rating.user_id == user_id),
        )
        .order_by(item.position)
        .limit(1)
    )
    if dialect_of(session) == "postgresql":
        item_id = _pick_unlocked(session, pick, item)
        if item_id is None:
            return None
        target = CampaignItem.id == item_id
    else:
        target = CampaignItem.id == pick.scalar_subquery()
    held = session.execute(
        update(CampaignItem)
        .where(target, CampaignItem.ratings_done + CampaignItem.open_holds < campaign.overlap)
        .values(open_holds=CampaignItem.open_holds + 1)
        .returning(CampaignItem.id)
        .execution_options(**_NO_SYNC)
    ).scalar_one_or_none()
    return held


def _pick_unlocked(session: Session, pick: Select[int], item: Any, attempts: int = 20) -> int | None:
    """PostgreSQL: the first candidate row no other transaction has locked, locked now for this one.

    SKIP LOCKED finds nothing while every candidate is locked by claims still in flight; those finish in
    milliseconds, so look again rather than tell the annotator there is nothing left.
    """
    for _ in range(attempts):
        item_id = session.execute(pick.with_for_update(skip_locked=True, of=item)).scalar_one_or_none()
        if item_id is not None or session.execute(pick).first() is None:
            return item_id
        time.sleep(0.02)
    return None


def claim_next(
    session: Session, account: Account, campaign_id: int, now: datetime | None = None
) -> Reservation | None:
    """The annotator's open reservation in the campaign, or a new one on the next item they may rate.

    Returns None when every item has its ratings or holds, or the annotator has seen all that are left.
    An existing reservation is extended; A/B sides are drawn at random when the reservation is made.
    """
    require_role(account, "annotator")
    now = now or utcnow()
    expire_stale(session, now)  # first statement is a write: on SQLite it takes the write lock
    campaign = _open_campaign(session, campaign_id)
    if not may_rate(session, account, campaign_id):
        raise QueueError(f"campaign {campaign_id} is not given to you")
    until = now + reservation_time()
    current = _current(session, account.id, campaign_id, until)
    if current is not None:
        return current
    item_id = _hold_next_item(session, account.id, campaign)
    if item_id is None:
        return None
    flipped = campaign.pairwise and secrets.randbelow(2) == 1
    values = {"status": "open", "reserved_at": now, "expires_at": until, "flipped": flipped}
    stmt = dialect_insert(session, Assignment).values(campaign_item_id=item_id, user_id=account.id, **values)
    # An expired reservation of this user on this item is reused; any other existing row is a lost race,
    # which returns nothing here and is retried by the caller after the rollback.
    stmt = stmt.on_conflict_do_update(
        index_elements=["campaign_item_id", "user_id"], set_=values, where=Assignment.status == "expired"
    ).returning(Assignment.id)
    assignment_id = session.execute(stmt).scalar_one_or_none()
    if assignment_id is None:
        raise QueueError("this item was reserved for you in another tab; reload the page")
    return Reservation(assignment_id, item_id, until, flipped)


def _close_assignment(session: Session, account: Account, assignment_id: int, status: str) -> tuple[int, bool, bool]:
    """Mark the user's assignment ``status``; returns (campaign item id, flipped, whether it still held a slot)."""
    for before in ("open", "expired"):
        row = session.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id, Assignment.user_id == account.id, Assignment.status == before)
            .values(status=status)
            .returning(Assignment.campaign_item_id, Assignment.flipped)
            .execution_options(**_NO_SYNC)
        ).one_or_none()
        if row is not None:
            return row[0], row[1], before == "open"
    raise QueueError("this item is no longer reserved for you (already rated or skipped); take the next one")


def _count_rating(session: Session, item: CampaignItem, overlap: int, held: bool) -> None:
    done = CampaignItem.ratings_done + 1
    if held:
        values = {"ratings_done": done, "open_holds": CampaignItem.open_holds - 1}
        stmt = update(CampaignItem).where(CampaignItem.id == item.id)
    else:  # the reservation expired: accept the rating only if nobody has taken the slot since
        values = {"ratings_done": done}
        stmt = update(CampaignItem).where(
            CampaignItem.id == item.id, CampaignItem.ratings_done + CampaignItem.open_holds < overlap
        )
    result = cast(CursorResult[Any], session.execute(stmt.values(**values).execution_options(**_NO_SYNC)))
    if result.rowcount != 1:
        raise QueueError("your reservation expired and others rated this item meanwhile; nothing was stored")


def submit_rating(
    session: Session, account: Account, assignment_id: int, answer: SingleAnswer | PairAnswer,
    simulated: bool = False,
) -> int:
    """Store the annotator's rating for their reservation and count it toward the item's overlap.

    Returns the rating's id. Raises ``QueueError`` when the reservation is no longer theirs, and
    ``ValueError`` when the answer does not fit the item (a span not in the output, A/B on a single output).
    ``simulated``: a program gave the answer, not a person (``evaltune demo``); the rating is marked so.
    """
    require_role(account, "annotator")
    item_id, flipped, held = _close_assignment(session, account, assignment_id, "done")
    item = session.get(CampaignItem, item_id)
    assert item is not None  # the foreign key guarantees it
    campaign = session.get(Campaign, item.campaign_id)
    assert campaign is not None
    if not may_rate(session, account, campaign.id):  # taken off the campaign since the reservation was made
        raise QueueError(f"campaign {campaign.id} is not given to you; nothing was stored")
    rating = Rating(campaign_item_id=item.id, user_id=account.id, simulated=simulated)
    if isinstance(answer, PairAnswer):
        if not campaign.pairwise or item.other_generation_id is None:
            raise ValueError("this item is a single output, not an A/B pair")
        sides = [item.generation_id, item.other_generation_id]
        rating.side_a_generation_id, rating.side_b_generation_id = reversed(sides) if flipped else sides
        rating.choice, rating.comment = answer.choice, answer.comment
    else:
        if campaign.pairwise:
            raise ValueError("this item is an A/B pair: choose a side")
        output = session.execute(select(Generation.output).where(Generation.id == item.generation_id)).scalar_one()
        answer.check_span(output)
        rating.generation_id = item.generation_id
        for field in SINGLE_FIELDS:
            setattr(rating, field, getattr(answer, field))
        rating.spans = [list(span) for span in answer.spans] if answer.spans else None  # JSON: [[start, end]]
    _count_rating(session, item, campaign.overlap, held)
    session.add(rating)
    session.flush()  # the unique (item, user) constraint fires here, inside the caller's transaction
    return rating.id


def skip(session: Session, account: Account, assignment_id: int, comment: str | None = None) -> None:
    """Give the item back to the queue for others; the annotator is not offered it again."""
    require_role(account, "annotator")
    item_id, _flipped, held = _close_assignment(session, account, assignment_id, "skipped")
    if held:
        session.execute(
            update(CampaignItem)
            .where(CampaignItem.id == item_id)
            .values(open_holds=CampaignItem.open_holds - 1)
            .execution_options(**_NO_SYNC)
        )
    session.add(Rating(campaign_item_id=item_id, user_id=account.id, skipped=True, comment=comment or None))
    session.flush()
