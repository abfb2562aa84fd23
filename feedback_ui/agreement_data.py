"""Agreement over a campaign's stored ratings: the SQL that counts values per item, fed to ``agreement``.

Only counts leave the database (item, value, how many), never the rating rows themselves. Skipped ratings
do not count. A/B choices are compared as the annotators meant them, not as the sides were shown:
``first``/``second`` is the campaign item's generation / other generation, whichever side it was on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import SuiteItem
from evaltune.db.ratings import CampaignItem, Rating, User
from evaltune.feedback_ui.agreement import Level, cohen_kappa, krippendorff_alpha, unit_disagreement

# question -> level of measurement; which apply depends on the campaign kind
SINGLE_QUESTIONS: dict[str, Level] = {"likert": "ordinal", "thumbs": "nominal", "hallucination": "nominal",
                                      "bias": "nominal", "unsafe": "nominal"}
PAIR_QUESTIONS: dict[str, Level] = {"choice": "nominal"}


@dataclass(frozen=True)
class QuestionAgreement:
    """Alpha for one question, with how many items and ratings it rests on."""

    question: str
    level: Level
    alpha: float | None
    items: int  # items with at least two ratings
    ratings: int


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


def campaign_agreement(session: Session, campaign_id: int, pairwise: bool) -> list[QuestionAgreement]:
    """Krippendorff's alpha for each question of the campaign."""
    results = []
    for question, level in questions(pairwise).items():
        units = value_counts(session, campaign_id, question)
        pairable = [unit for unit in units.values() if sum(unit.values()) >= 2]
        results.append(QuestionAgreement(question, level, krippendorff_alpha(pairable, level), len(pairable),
                                         sum(sum(unit.values()) for unit in units.values())))
    return results


def pair_kappas(session: Session, campaign_id: int, question: str, min_shared: int = 2) -> list[dict[str, Any]]:
    """Cohen's kappa for every pair of annotators who answered ``question`` on at least ``min_shared`` items.

    Likert uses quadratic weights (near misses count less); the rest are unweighted.
    """
    first, second = aliased(Rating), aliased(Rating)
    one, two = answer_of(question, first, CampaignItem), answer_of(question, second, CampaignItem)
    stmt = (
        select(first.user_id, second.user_id, one, two, func.count())
        .join(second, (second.campaign_item_id == first.campaign_item_id) & (second.user_id > first.user_id))
        .join(CampaignItem, CampaignItem.id == first.campaign_item_id)
        .where(CampaignItem.campaign_id == campaign_id, first.skipped.is_(False), second.skipped.is_(False))
        .where(one.is_not(None), two.is_not(None))
        .group_by(first.user_id, second.user_id, one, two)
    )
    tables: dict[tuple[int, int], Counter[tuple[Hashable, Hashable]]] = defaultdict(Counter)
    for user_a, user_b, a, b, count in session.execute(stmt):
        tables[user_a, user_b][a, b] += count
    names = dict(session.execute(select(User.id, User.name)).all())
    rows = []
    for (user_a, user_b), table in tables.items():
        shared = sum(table.values())
        if shared >= min_shared:
            kappa = cohen_kappa(table, "quadratic" if question == "likert" else None)
            rows.append({"annotators": f"{names[user_a]} / {names[user_b]}", "shared items": shared, "kappa": kappa})
    return sorted(rows, key=lambda row: -row["shared items"])


def most_disagreed(session: Session, campaign_id: int, question: str, level: Level, limit: int = 20
                   ) -> list[dict[str, Any]]:
    """The items whose annotators disagree most on ``question``, most first, with the answers given."""
    units = value_counts(session, campaign_id, question)
    scored = [(unit_disagreement(unit, "interval" if level == "ordinal" else level), item_id, unit)
              for item_id, unit in units.items() if sum(unit.values()) >= 2]
    scored = [entry for entry in scored if entry[0] > 0]
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    top = scored[:limit]
    keys = dict(session.execute(
        select(CampaignItem.id, SuiteItem.key).join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
        .where(CampaignItem.id.in_([item_id for _, item_id, _ in top]))
    ).all())
    return [{"campaign item": item_id, "item": keys.get(item_id, "?"), "disagreement": round(score, 3),
             "answers": ", ".join(f"{value}×{count}" for value, count in sorted(unit.items(), key=str))}
            for score, item_id, unit in top]
