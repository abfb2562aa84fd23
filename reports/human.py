"""Human ratings in a comparison: mean Likert per run, the A/B win rate, Bradley–Terry strengths.

Ties by rule: a pair of outputs a pairwise campaign never queued because the two were identical after whitespace
normalisation (``RuledTie``) counts as one tie, as if one annotator had judged it: it is added to ``ab_ties``
(and counted apart in ``ab_ruled_ties``), so, like every tie, it is left out of the win rate (wins / (wins +
losses)) and of that rate's Wilson interval, which are over decided votes only; in Bradley–Terry it is a tie vote
(half a win to each model), so identical outputs pull the two strengths together.

Selected items: ratings from a campaign whose items were not all its runs' outputs (an informative selection)
describe those items, not the runs; ``notes`` says so, campaign by campaign, with how the items were chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import Generation, ModelVersion, Run, Suite
from evaltune.db.ratings import Campaign, CampaignItem, Rating, RuledTie
from evaltune.metrics.stats.intervals import mean_with_ci, wilson_interval
from evaltune.reports.load import RunData
from evaltune.reports.records import HumanRatings, Interval, Strength

BT_RESAMPLES = 200
BT_PSEUDO_WINS = 0.1  # keeps a model that never lost (or never won) at a finite strength


def human_ratings(session: Session, base: RunData, cand: RunData, shared: list[str]) -> HumanRatings | None:
    """The ratings on the shared items' outputs; None when nobody rated either run."""
    base_ids = {g for k in shared for g in base.items[k]["generation_ids"]}
    cand_ids = {g for k in shared for g in cand.items[k]["generation_ids"]}
    likert_b = _likert(session, base.info.id, base_ids)
    likert_c = _likert(session, cand.info.id, cand_ids)
    wins = losses = ties = both_bad = 0
    for choice, side_a, side_b in _pairwise(session, (base.info.id, cand.info.id), base_ids | cand_ids):
        if {side_a, side_b} & cand_ids and {side_a, side_b} & base_ids:
            if choice in ("tie", "both_bad"):
                ties += choice == "tie"
                both_bad += choice == "both_bad"
                continue
            picked = side_a if choice == "a" else side_b
            wins += picked in cand_ids
            losses += picked in base_ids
    ruled = _ruled_ties(session, (base.info.id, cand.info.id), base_ids, cand_ids)
    ties += ruled
    if not (likert_b or likert_c or wins or losses or ties or both_bad):
        return None
    low, high = wilson_interval(wins, wins + losses)
    rate = wins / (wins + losses) if wins + losses else math.nan
    notes = [f"A/B: {ruled_ties_note(ruled)}; each counts as one tie (left out of the win rate and its interval, "
             "like every tie; half a win each in Bradley–Terry)"] if ruled else []
    notes += _selection_notes(session, (base.info.id, cand.info.id), base_ids | cand_ids)
    return HumanRatings(_interval(likert_b), _interval(likert_c), wins, losses, ties, both_bad, rate, low, high,
                        _strengths(session, base.info.suite), ab_ruled_ties=ruled, notes=notes)


def ruled_ties_note(count: int) -> str:
    """'12 pairs were identical and recorded as ties, not asked'."""
    return f"{count} pair{'s were' if count != 1 else ' was'} identical and recorded as ties, not asked"


def selection_note(selection: dict[str, Any] | None) -> str:
    """How a campaign's items were chosen, in words: '' when they are every output that passes its filters."""
    selection = selection or {}
    if selection.get("method", "all") == "all":
        return ""
    if selection.get("method") != "informative":
        return f"items chosen by {selection.get('method')!r} selection"
    # Most items first: PostgreSQL's JSONB does not keep the keys in the order they were written.
    counts = sorted((selection.get("reasons") or {}).items(), key=lambda pair: (-pair[1], pair[0]))
    reasons = ", ".join(f"{reason} {count}" for reason, count in counts if count)
    return (f"items chosen by informative selection: {selection.get('items')} of {selection.get('candidates')} "
            f"candidates ({selection.get('informative')} informative), for a budget of {selection.get('budget')} "
            f"judgements at overlap {selection.get('overlap')}, seed {selection.get('seed')}"
            + (f"; chosen because {reasons}" if reasons else ""))


def not_overall_rates(run_ids: str) -> str:
    return f"rates from it describe these items, not the overall rates of {run_ids}"


def _ruled_ties(session: Session, run_ids: tuple[int, int], base_ids: set[int], cand_ids: set[int]) -> int:
    """Pairs of one baseline and one candidate output recorded as ties because they were identical."""
    first = aliased(Generation)
    stmt = (select(RuledTie.generation_id, RuledTie.other_generation_id)
            .join(first, first.id == RuledTie.generation_id).where(first.run_id.in_(run_ids)))
    return sum(1 for a, b in session.execute(stmt) if {a, b} & base_ids and {a, b} & cand_ids)


def _selection_notes(session: Session, run_ids: tuple[int, int], generation_ids: set[int]) -> list[str]:
    """A line per campaign whose rated items these outputs are and whose items were selected, not all taken."""
    stmt = (select(CampaignItem.campaign_id, CampaignItem.generation_id).distinct()
            .join(Rating, Rating.campaign_item_id == CampaignItem.id)
            .join(Generation, Generation.id == CampaignItem.generation_id)
            .where(Generation.run_id.in_(run_ids), Rating.skipped.is_(False)))
    ids = sorted({cid for cid, gid in session.execute(stmt) if gid in generation_ids})
    campaigns = session.execute(select(Campaign).where(Campaign.id.in_(ids)).order_by(Campaign.id)).scalars()
    return [f"Campaign #{c.id} {c.name!r}: {selection_note(c.selection)}; "
            f"{not_overall_rates('run ' + ' and run '.join(map(str, c.run_ids)))}"
            for c in campaigns if selection_note(c.selection)]


def _interval(values: list[float]) -> Interval:
    estimate = mean_with_ci(values)
    return Interval(estimate.value, estimate.ci_low, estimate.ci_high, estimate.n)


def _likert(session: Session, run_id: int, generation_ids: set[int]) -> list[float]:
    # Selected by run and kept by id here: an IN list of every output's id would pass SQLite's and PostgreSQL's
    # bound-parameter limits on a large run (32,766 and 65,535).
    stmt = (select(Rating.generation_id, Rating.likert).join(Generation, Generation.id == Rating.generation_id)
            .where(Generation.run_id == run_id, Rating.likert.is_not(None), Rating.skipped.is_(False)))
    return [float(v) for gid, v in session.execute(stmt) if gid in generation_ids and v is not None]


def _pairwise(session: Session, run_ids: tuple[int, int], generation_ids: set[int]) -> list[tuple[str, int, int]]:
    """The A/B votes on an output of these runs, kept when both sides are among ``generation_ids``."""
    side_a, side_b = aliased(Generation), aliased(Generation)
    stmt = (select(Rating.choice, Rating.side_a_generation_id, Rating.side_b_generation_id)
            .join(side_a, side_a.id == Rating.side_a_generation_id)
            .join(side_b, side_b.id == Rating.side_b_generation_id)
            .where(Rating.choice.is_not(None), Rating.skipped.is_(False),
                   or_(side_a.run_id.in_(run_ids), side_b.run_id.in_(run_ids))))
    return [(str(c), int(a), int(b)) for c, a, b in session.execute(stmt)
            if a is not None and b is not None and (a in generation_ids or b in generation_ids)]


def _strengths(session: Session, suite_name: str) -> list[Strength]:
    """Bradley–Terry over every A/B vote between model versions on this suite and every tie by rule (ties count
    half each)."""
    gen_a, gen_b = aliased(Generation), aliased(Generation)
    run_a, run_b = aliased(Run), aliased(Run)
    model_a, model_b = aliased(ModelVersion), aliased(ModelVersion)
    stmt = (
        select(Rating.choice, model_a.name, model_b.name)
        .join(gen_a, gen_a.id == Rating.side_a_generation_id).join(run_a, run_a.id == gen_a.run_id)
        .join(model_a, model_a.id == run_a.model_version_id)
        .join(gen_b, gen_b.id == Rating.side_b_generation_id).join(run_b, run_b.id == gen_b.run_id)
        .join(model_b, model_b.id == run_b.model_version_id)
        .join(Suite, Suite.id == run_a.suite_id)
        .where(Suite.name == suite_name, Rating.choice.in_(("a", "b", "tie")), Rating.skipped.is_(False))
    )
    votes = [(a, b, str(choice)) for choice, a, b in session.execute(stmt) if a != b]
    ruled = (
        select(model_a.name, model_b.name).select_from(RuledTie)
        .join(gen_a, gen_a.id == RuledTie.generation_id).join(run_a, run_a.id == gen_a.run_id)
        .join(model_a, model_a.id == run_a.model_version_id)
        .join(gen_b, gen_b.id == RuledTie.other_generation_id).join(run_b, run_b.id == gen_b.run_id)
        .join(model_b, model_b.id == run_b.model_version_id)
        .join(Suite, Suite.id == run_a.suite_id)
        .where(Suite.name == suite_name)
    )
    votes += [(a, b, "tie") for a, b in session.execute(ruled) if a != b]  # identical outputs: a tie by rule
    names = sorted({v[0] for v in votes} | {v[1] for v in votes})
    if len(names) < 2:
        return []
    index = {name: i for i, name in enumerate(names)}
    coded = np.array([(index[a], index[b], {"a": 1.0, "b": 0.0, "tie": 0.5}[c]) for a, b, c in votes])
    point = bradley_terry(coded, len(names))
    rng = np.random.default_rng(0)
    boots = np.array([bradley_terry(coded[rng.integers(0, len(coded), len(coded))], len(names))
                      for _ in range(BT_RESAMPLES)])
    low, high = np.percentile(boots, [2.5, 97.5], axis=0)
    return [Strength(name, float(point[i]), float(low[i]), float(high[i])) for i, name in enumerate(names)]


def bradley_terry(votes: Sequence[Sequence[float]] | np.ndarray, players: int, iterations: int = 200) -> np.ndarray:
    """Log-strengths (mean zero) from rows (i, j, score of i against j), by the MM algorithm."""
    wins = np.full((players, players), BT_PSEUDO_WINS)
    np.fill_diagonal(wins, 0.0)
    for i, j, s in np.asarray(votes, dtype=float):
        wins[int(i), int(j)] += s
        wins[int(j), int(i)] += 1.0 - s
    games = wins + wins.T
    strength = np.ones(players)
    for _ in range(iterations):
        denominator = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        strength = wins.sum(axis=1) / denominator
        strength /= np.exp(np.log(strength).mean())
    logs = np.log(strength)
    return np.asarray(logs - logs.mean())
