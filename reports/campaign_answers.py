"""What a campaign's annotators answered, counted per campaign item in SQL: the app's Agreement and Adjudicate
pages and the judge-vs-annotators report all read answers through here.

Only counts leave the database (item, value, how many), never the rating rows themselves. Skipped ratings
do not count. A/B choices are compared as the annotators meant them, not as the sides were shown:
``first``/``second`` is the campaign item's generation / other generation, whichever side it was on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from evaltune.db.ratings import Adjudication, CampaignItem, Rating
from evaltune.metrics.stats.agreement import Level

# question -> level of measurement; which apply depends on the campaign kind
SINGLE_QUESTIONS: dict[str, Level] = {"likert": "ordinal", "thumbs": "nominal", "hallucination": "nominal",
                                      "bias": "nominal", "unsafe": "nominal"}
PAIR_QUESTIONS: dict[str, Level] = {"choice": "nominal"}


def questions(pairwise: bool) -> dict[str, Level]:
    """The questions a campaign of this kind asks, with their levels of measurement."""
    return PAIR_QUESTIONS if pairwise else SINGLE_QUESTIONS


def answer_of(question: str, rating: Any, item: Any) -> ColumnElement[Any]:
    """The SQL value of ``question`` in a rating row (aliases allowed); A/B mapped to first/second."""
    if question != "choice":
        return getattr(rating, question)
    shown_first = case(
        (rating.choice == "a", rating.side_a_generation_id), (rating.choice == "b", rating.side_b_generation_id)
    )
    return case(
        (rating.choice.in_(["a", "b"]), case((shown_first == item.generation_id, "first"), else_="second")),
        else_=rating.choice,
    )


def value_counts(session: Session, campaign_id: int, question: str) -> dict[int, Counter[Hashable]]:
    """For each campaign item: how many annotators gave each answer to ``question``."""
    value = answer_of(question, Rating, CampaignItem)
    stmt = (
        select(Rating.campaign_item_id, value, func.count())
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False), value.is_not(None))
        .group_by(Rating.campaign_item_id, value)
    )
    units: dict[int, Counter[Hashable]] = defaultdict(Counter)
    for item_id, answer, count in session.execute(stmt):
        units[item_id][answer] += count
    return units


def decisions(session: Session, campaign_id: int, question: str) -> dict[int, Hashable]:
    """For each adjudicated campaign item: the admin's final answer to ``question`` (items without one left out)."""
    stmt = (select(Adjudication.campaign_item_id, Adjudication.decision)
            .join(CampaignItem, CampaignItem.id == Adjudication.campaign_item_id)
            .where(CampaignItem.campaign_id == campaign_id))
    return {item_id: decision[question] for item_id, decision in session.execute(stmt)
            if isinstance(decision, dict) and decision.get(question) is not None}
