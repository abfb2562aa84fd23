"""Progress per campaign and per annotator, each one aggregate query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from evaltune.db.base import utcnow
from evaltune.db.ratings import Assignment, Campaign, CampaignItem, Rating, User


@dataclass(frozen=True)
class CampaignProgress:
    """How far a campaign is: items complete (k ratings), ratings stored of those wanted, and the reservations
    open now: annotators' (their work in progress) and admins' (an admin trying the Rate page), kept apart."""

    campaign_id: int
    name: str
    status: str
    pairwise: bool
    overlap: int
    items: int
    complete_items: int
    ratings: int
    wanted: int
    open_holds: int  # annotators' open, unexpired reservations
    admin_holds: int = 0  # admins' own open, unexpired reservations: not annotators' open work

    @property
    def fraction(self) -> float:
        return self.ratings / self.wanted if self.wanted else 1.0


def open_reservations(session: Session, campaign_ids: list[int] | None = None, user_id: int | None = None
                      ) -> dict[tuple[int, str], int]:
    """Open, unexpired reservations per (campaign, role of the holder); only ``user_id``'s when given.

    Counted from the reservations themselves, not ``CampaignItem.open_holds`` (which the queue keeps for its
    overlap check, counts everyone's and includes holds expired but not yet swept)."""
    stmt = (
        select(CampaignItem.campaign_id, User.role, func.count(Assignment.id))
        .join(CampaignItem, CampaignItem.id == Assignment.campaign_item_id)
        .join(User, User.id == Assignment.user_id)
        .where(Assignment.status == "open", Assignment.expires_at > utcnow())
        .group_by(CampaignItem.campaign_id, User.role)
    )
    if campaign_ids is not None:
        stmt = stmt.where(CampaignItem.campaign_id.in_(campaign_ids))
    if user_id is not None:
        stmt = stmt.where(Assignment.user_id == user_id)
    return {(campaign_id, role): int(count) for campaign_id, role, count in session.execute(stmt)}


def campaign_progress(session: Session, campaign_ids: list[int] | None = None) -> list[CampaignProgress]:
    """Progress of the given campaigns (default: all), newest first."""
    stmt = (
        select(
            Campaign.id, Campaign.name, Campaign.status, Campaign.pairwise, Campaign.overlap,
            func.count(CampaignItem.id),
            func.coalesce(func.sum(case((CampaignItem.ratings_done >= Campaign.overlap, 1), else_=0)), 0),
            func.coalesce(func.sum(CampaignItem.ratings_done), 0),
        )
        .outerjoin(CampaignItem, CampaignItem.campaign_id == Campaign.id)
        .group_by(Campaign.id)
        .order_by(Campaign.id.desc())
    )
    if campaign_ids is not None:
        stmt = stmt.where(Campaign.id.in_(campaign_ids))
    holds = open_reservations(session, campaign_ids)
    return [
        CampaignProgress(cid, name, status, pairwise, overlap, items, complete, ratings, items * overlap,
                         holds.get((cid, "annotator"), 0), holds.get((cid, "admin"), 0))
        for cid, name, status, pairwise, overlap, items, complete, ratings in session.execute(stmt)
    ]


def annotator_progress(session: Session, campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Per annotator (role ``annotator``): ratings stored, items skipped, reservations open now, last rating
    time. Admins who rated are left out: their ratings count in the campaign's totals, and their own
    reservations are shown apart (``open_reservations``), not as annotators' open work."""
    rated = case((Rating.skipped.is_(False), 1), else_=0)
    stmt = (
        select(User.name, func.sum(rated), func.count(Rating.id) - func.sum(rated), func.max(Rating.created_at))
        .join(Rating, Rating.user_id == User.id)
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(User.role == "annotator")
        .group_by(User.name)
        .order_by(func.sum(rated).desc())
    )
    holds = (
        select(User.name, func.count(Assignment.id))
        .join(Assignment, Assignment.user_id == User.id)
        .join(CampaignItem, CampaignItem.id == Assignment.campaign_item_id)
        .where(Assignment.status == "open", Assignment.expires_at > utcnow(), User.role == "annotator")
        .group_by(User.name)
    )
    if campaign_id is not None:
        stmt = stmt.where(CampaignItem.campaign_id == campaign_id)
        holds = holds.where(CampaignItem.campaign_id == campaign_id)
    open_now = dict(session.execute(holds).all())
    rows = [{"annotator": name, "rated": int(done or 0), "skipped": int(skipped or 0),
             "open now": open_now.pop(name, 0), "last rating": f"{last:%Y-%m-%d %H:%M}" if last else "never"}
            for name, done, skipped, last in session.execute(stmt)]
    rows += [{"annotator": name, "rated": 0, "skipped": 0, "open now": n, "last rating": "never"}
             for name, n in open_now.items()]
    return rows


def my_progress(session: Session, user_id: int, campaign_id: int) -> tuple[int, int]:
    """(items this annotator has rated in the campaign, items still open to them: not full, not yet seen)."""
    done = session.execute(
        select(func.count(Rating.id))
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(CampaignItem.campaign_id == campaign_id, Rating.user_id == user_id, Rating.skipped.is_(False))
    ).scalar_one()
    campaign = session.get(Campaign, campaign_id)
    overlap = campaign.overlap if campaign else 1
    seen = select(Assignment.campaign_item_id).where(Assignment.user_id == user_id, Assignment.status != "expired")
    left = session.execute(
        select(func.count(CampaignItem.id)).where(
            CampaignItem.campaign_id == campaign_id,
            CampaignItem.ratings_done < overlap,
            CampaignItem.id.not_in(seen),
        )
    ).scalar_one()
    return int(done), int(left)
