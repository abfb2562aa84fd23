"""Admin adjudication: see every rating of a disagreed item and record the final decision per question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaltune.db.base import utcnow
from evaltune.db.evaluation import Generation
from evaltune.db.queries import dialect_insert
from evaltune.db.ratings import Adjudication, CampaignItem, Rating, User
from evaltune.feedback_ui.agreement_data import answer_of, questions
from evaltune.feedback_ui.auth import Account, require_role

_ALLOWED: dict[str, set[Any]] = {
    "likert": {1, 2, 3, 4, 5},
    "thumbs": {True, False},
    "hallucination": {True, False},
    "bias": {True, False},
    "unsafe": {True, False},
    "choice": {"first", "second", "tie", "both_bad"},
}


@dataclass(frozen=True)
class ItemRatings:
    """One campaign item for an admin: its outputs (with their runs) and each annotator's answers."""

    campaign_item_id: int
    outputs: list[tuple[str, str]]  # (label naming the run, output text); first = the item's generation
    ratings: list[dict[str, Any]]
    decision: dict[str, Any] | None
    note: str


def item_ratings(session: Session, actor: Account, campaign_item_id: int) -> ItemRatings:
    """Everything an admin needs to adjudicate one item (raises ``LookupError`` if there is no such item)."""
    require_role(actor, "admin")
    item = session.get(CampaignItem, campaign_item_id)
    if item is None:
        raise LookupError(f"no campaign item {campaign_item_id}")
    ids = [item.generation_id] + ([item.other_generation_id] if item.other_generation_id else [])
    found = {gid: (run_id, text) for gid, run_id, text in session.execute(
        select(Generation.id, Generation.run_id, Generation.output).where(Generation.id.in_(ids)))}
    labels = ["first", "second"]
    outputs = [(f"{labels[i]} (run {found[gid][0]})", found[gid][1]) for i, gid in enumerate(ids)]
    pairwise = item.other_generation_id is not None
    asked = list(questions(pairwise))
    columns = [answer_of(q, Rating, CampaignItem).label(q) for q in asked]
    rows = session.execute(
        select(User.name.label("annotator"), *columns, Rating.hallucinated_span, Rating.correction, Rating.comment)
        .join(User, User.id == Rating.user_id)
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(Rating.campaign_item_id == campaign_item_id, Rating.skipped.is_(False))
        .order_by(Rating.id)
    )
    ratings = [dict(row._mapping) for row in rows]
    existing = session.execute(
        select(Adjudication).where(Adjudication.campaign_item_id == campaign_item_id)
    ).scalar_one_or_none()
    return ItemRatings(campaign_item_id, outputs, ratings, existing.decision if existing else None,
                       existing.note if existing else "")


def adjudicate(session: Session, actor: Account, campaign_item_id: int, decision: dict[str, Any], note: str = ""
               ) -> None:
    """Record (or replace) the final decision on an item and mark its ratings as adjudicated by ``actor``.

    Datasets built afterwards (``evaltune data build``) use the decision in place of the annotators' answers to
    the questions it settles (likert, thumbs, hallucination, choice) and count the item as adjudicated.

    Raises ``ValueError`` for a question the item does not ask or a value it does not allow.
    """
    require_role(actor, "admin")
    item = session.get(CampaignItem, campaign_item_id)
    if item is None:
        raise LookupError(f"no campaign item {campaign_item_id}")
    asked = questions(item.other_generation_id is not None)
    for question, value in decision.items():
        if question not in asked or value not in _ALLOWED[question]:
            raise ValueError(f"{question}={value!r} is not an answer this item allows")
    values = {"user_id": actor.id, "decision": dict(decision), "note": note.strip(), "created_at": utcnow()}
    stmt = dialect_insert(session, Adjudication).values(campaign_item_id=campaign_item_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["campaign_item_id"], set_=values))
    session.execute(
        update(Rating).where(Rating.campaign_item_id == campaign_item_id).values(adjudicated_by=actor.id)
        .execution_options(synchronize_session=False)
    )

