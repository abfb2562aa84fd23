"""Runs and their outputs for the app: one page of rows at a time, filtered and counted in SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation, RunMetric, Score, SuiteItem
from evaltune.db.ratings import Rating, User
from evaltune.feedback_ui.campaigns import parse_filters, score_passes
from evaltune.feedback_ui.rating_task import prompt_text
from evaltune.feedback_ui.transactions import has_tag

PAGE_SIZE = 25


def runs_table(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs, one row each, with every metric as 'value [low, high]'."""
    rows = []
    for run in queries.list_runs(session, limit=limit):
        row: dict[str, Any] = {"run": run.id, "status": run.status, "suite": run.suite.name,
                               "model": run.model_version.name, "outputs": run.stats.get("outputs"),
                               "created": run.created_at.strftime("%Y-%m-%d %H:%M")}
        for metric in run.metrics:
            row[metric.name] = f"{metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"
        rows.append(row)
    return rows


def run_metrics(session: Session, run_id: int) -> list[dict[str, Any]]:
    """One run's metrics with their 95% intervals and n."""
    stmt = select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.name)
    return [{"metric": m.name, "family": m.family, "better": "higher" if m.higher_is_better else "lower",
             "value": round(m.value, 4), "95% CI": f"[{m.ci_low:.3f}, {m.ci_high:.3f}]", "n": m.n}
            for m in session.execute(stmt).scalars()]


@dataclass(frozen=True)
class OutputFilter:
    """What to show of a run: a tag, score rules (as in campaigns), text in the output."""

    tag: str | None = None
    score_rules: list[str] = field(default_factory=list)
    text: str | None = None


def _filtered(session: Session, run_id: int, flt: OutputFilter) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [Generation.run_id == run_id]
    if flt.tag:
        conditions.append(has_tag(session, flt.tag))
    conditions += [score_passes(Generation.id, rule) for rule in parse_filters(flt.score_rules).scores]
    if flt.text:
        conditions.append(Generation.output.contains(flt.text, autoescape=True))
    return select(Generation.id).join(SuiteItem, SuiteItem.id == Generation.item_id).where(*conditions)


def count_outputs(session: Session, run_id: int, flt: OutputFilter) -> int:
    """How many of the run's outputs pass the filter."""
    matching = _filtered(session, run_id, flt).subquery()
    return int(session.execute(select(func.count()).select_from(matching)).scalar_one())


def outputs_page(session: Session, run_id: int, flt: OutputFilter, page: int, page_size: int = PAGE_SIZE
                 ) -> list[dict[str, Any]]:
    """One page (0-based) of the run's outputs that pass the filter, with their scores and rating counts.

    Three queries whatever the page or run size: the page's generations, their scores, their ratings
    (single-output ratings: A/B votes belong to a pair and are shown on the Agreement and Adjudicate pages).
    """
    ids = _filtered(session, run_id, flt).order_by(Generation.id).limit(page_size).offset(page * page_size)
    rows = session.execute(
        select(Generation.id, SuiteItem.key, SuiteItem.input, SuiteItem.references, SuiteItem.tags,
               Generation.sample_index, Generation.output)
        .join(SuiteItem, SuiteItem.id == Generation.item_id)
        .where(Generation.id.in_(ids.scalar_subquery()))
        .order_by(Generation.id)
    ).all()
    gen_ids = [row[0] for row in rows]
    scores: dict[int, dict[str, float | None]] = {gid: {} for gid in gen_ids}
    for gid, scorer, value in session.execute(
        select(Score.generation_id, Score.scorer, Score.value).where(Score.generation_id.in_(gen_ids))
    ):
        if gid is not None:
            scores[gid][scorer] = value
    ratings = _page_ratings(session, gen_ids)
    return [{"generation": gid, "item": key, "sample": sample, "prompt": prompt_text(item_input),
             "references": [str(r) for r in refs or []], "tags": list(tags or []), "output": output,
             "scores": scores[gid], "ratings": ratings.get(gid, [])}
            for gid, key, item_input, refs, tags, sample, output in rows]


def _page_ratings(session: Session, gen_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The single-output ratings of these generations, by generation (a page holds a few dozen at most)."""
    rows = session.execute(
        select(Rating.generation_id, User.name.label("annotator"), Rating.likert, Rating.hallucination,
               Rating.hallucinated_span, Rating.bias, Rating.unsafe, Rating.correction, Rating.comment)
        .join(User, User.id == Rating.user_id)
        .where(Rating.generation_id.in_(gen_ids), Rating.skipped.is_(False))
        .order_by(Rating.id)
    ).mappings()
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        record = dict(row)
        found.setdefault(record.pop("generation_id"), []).append(record)
    return found


def rating_summary(ratings: list[dict[str, Any]]) -> str:
    """'2 ratings, mean 3.5, 1 hallucination' for a list of rating rows; 'not rated' for none."""
    if not ratings:
        return "not rated"
    likerts = [r["likert"] for r in ratings if r["likert"] is not None]
    parts = [f"{len(ratings)} rating{'s' if len(ratings) > 1 else ''}"]
    if likerts:
        parts.append(f"mean {sum(likerts) / len(likerts):.1f}")
    hallucinated = sum(bool(r["hallucination"]) for r in ratings)
    if hallucinated:
        parts.append(f"{hallucinated} hallucination")
    return ", ".join(parts)
