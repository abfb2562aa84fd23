"""Agreement over a campaign's stored ratings: answers counted per item (``reports.campaign_answers``), fed to
the statistics of ``metrics.stats.agreement``; a judge whose scores are stored joins as one more rater.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import SuiteItem
from evaltune.db.ratings import CampaignItem, Rating, User
from evaltune.metrics.stats.agreement import Level, cohen_kappa, krippendorff_alpha, unit_disagreement
from evaltune.reports.campaign_answers import answer_of as answer_of  # the adjudication page reads it from here
from evaltune.reports.campaign_answers import questions as questions
from evaltune.reports.campaign_answers import value_counts
from evaltune.reports.judge_agreement import (
    QuestionResult,
    as_judged,
    judge_answer,
    judge_values,
    question_result,
    stored_judges,
)


@dataclass(frozen=True)
class QuestionAgreement:
    """Alpha for one question, with how many items and ratings it rests on."""

    question: str
    level: Level
    alpha: float | None
    items: int  # items with at least two ratings
    ratings: int


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


def judge_results(session: Session, campaign_id: int, pairwise: bool) -> list[tuple[dict[str, Any], QuestionResult]]:
    """Every judge whose answers are stored for the campaign (``evaltune judge agreement``), per question: its
    details (question, judge, criteria) and how it agrees with the annotators, alone and as one more rater."""
    asked = questions(pairwise)
    return [(details, question_result(session, campaign_id, details["question"], asked[details["question"]], scorer))
            for scorer, details in stored_judges(session, campaign_id).items() if details["question"] in asked]


def judge_kappas(session: Session, campaign_id: int, question: str, min_shared: int = 2) -> list[dict[str, Any]]:
    """Cohen's kappa between each stored judge and each annotator on ``question``, weighted as ``pair_kappas``."""
    answer = answer_of(question, Rating, CampaignItem)
    stmt = (select(Rating.user_id, Rating.campaign_item_id, answer)
            .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
            .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False), answer.is_not(None)))
    given = session.execute(stmt).all()
    names = dict(session.execute(select(User.id, User.name)).all())
    rows = []
    for scorer, details in stored_judges(session, campaign_id).items():
        if details["question"] != question:
            continue
        values = judge_values(session, campaign_id, scorer)
        tables: dict[int, Counter[tuple[Hashable, Hashable]]] = defaultdict(Counter)
        for user_id, item_id, theirs in given:
            if item_id in values:
                tables[user_id][judge_answer(question, values[item_id]), as_judged(theirs)] += 1
        for user_id, table in tables.items():
            if sum(table.values()) >= min_shared:
                kappa = cohen_kappa(table, "quadratic" if question == "likert" else None)
                rows.append({"annotators": f"judge {details['judge']} / {names[user_id]}",
                             "shared items": sum(table.values()), "kappa": kappa})
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
