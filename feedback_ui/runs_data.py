"""Runs and their outputs for the app: one page of rows at a time, filtered and counted in SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation, Run, RunMetric, SuiteItem
from evaltune.db.ratings import Rating, User
from evaltune.feedback_ui.campaigns import parse_filters, score_passes
from evaltune.feedback_ui.transactions import has_tag
from evaltune.reports.outputs import OutputRow, check_scorers, check_tag, failure_condition, output_rows
from evaltune.reports.outputs_format import item_label, score_text
from evaltune.reports.run_metrics import metric_lines

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
    """One run's metrics, every one (the table sorts and scrolls; nothing folded), under the names the run
    summary and reports use, with 95% intervals, n, p for bias gaps and the summary's ``(small n)`` mark."""
    stmt = select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.name)
    metrics = [{"name": m.name, "family": m.family, "higher_is_better": m.higher_is_better, "value": m.value,
                "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n, "details": m.details}
               for m in session.execute(stmt).scalars()]
    return [{"metric": line.name, "family": line.family, "better": "higher" if line.higher_is_better else "lower",
             "value": round(line.value, 4), "95% CI": f"[{line.ci_low:.3f}, {line.ci_high:.3f}]", "n": line.n,
             "p": None if line.p_value is None else round(line.p_value, 4), "note": line.note}
            for line in metric_lines(metrics)]


def _run_item_keys(session: Session, run_ids: list[int]) -> dict[int, frozenset[str]]:
    """For each run that has outputs: the keys of the items its suite version offered it (its first
    ``item_limit`` when it was limited). Read per suite version, not per output, so that it stays one small
    query however many outputs the runs hold."""
    with_outputs = exists(select(Generation.id).where(Generation.run_id == Run.id))
    runs = session.execute(select(Run.id, Run.suite_id, Run.item_limit).where(Run.id.in_(run_ids), with_outputs)
                           ).all()
    items = session.execute(select(SuiteItem.suite_id, SuiteItem.key, SuiteItem.position)
                            .where(SuiteItem.suite_id.in_({suite_id for _, suite_id, _ in runs}))).all()
    by_version: dict[tuple[int, int | None], frozenset[str]] = {}
    keys: dict[int, frozenset[str]] = {}
    for run_id, suite_id, limit in runs:
        if (suite_id, limit) not in by_version:
            by_version[suite_id, limit] = frozenset(
                key for sid, key, position in items if sid == suite_id and (limit is None or position < limit))
        keys[run_id] = by_version[suite_id, limit]
    return keys


def comparable_pair(session: Session, run_ids: list[int]) -> tuple[int, int] | None:
    """(baseline, candidate) for the Compare page to open on: the newest run that shares items with an earlier
    one, and the newest such earlier run (``run_ids`` newest first, as ``runs_table`` lists them); None when no
    two of them share an item."""
    keys = _run_item_keys(session, run_ids)
    ordered = [run_id for run_id in run_ids if run_id in keys]
    for position, candidate in enumerate(ordered):
        for baseline in ordered[position + 1:]:
            if keys[candidate] & keys[baseline]:
                return baseline, candidate
    return None


def shares_items(session: Session, baseline: int, candidate: int) -> bool:
    """Whether the two runs have outputs for at least one item key in common (what a comparison needs)."""
    keys = _run_item_keys(session, [baseline, candidate])
    return bool(keys.get(baseline, frozenset()) & keys.get(candidate, frozenset()))


@dataclass(frozen=True)
class OutputFilter:
    """What to show of a run: a tag, score rules (as in campaigns), text in the output, only failures."""

    tag: str | None = None
    score_rules: list[str] = field(default_factory=list)
    text: str | None = None
    failures: bool = False  # reports.outputs.FAILURE_RULE


@dataclass(frozen=True)
class ShownOutput:
    """One output of the page and its single-output ratings."""

    row: OutputRow
    ratings: list[dict[str, Any]]


def check_filter(session: Session, run_id: int, flt: OutputFilter) -> None:
    """Raise ``OutputsError`` for a tag no item of the run carries or a score rule on a scorer the run lacks
    (``CampaignError`` for a rule that cannot be read), each naming the closest that exists."""
    if flt.tag:
        check_tag(session, run_id, flt.tag)
    check_scorers(session, run_id, [rule["scorer"] for rule in parse_filters(flt.score_rules).scores])


def _filtered(session: Session, run_id: int, flt: OutputFilter) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [Generation.run_id == run_id]
    if flt.tag:
        conditions.append(has_tag(session, flt.tag))
    conditions += [score_passes(Generation.id, rule) for rule in parse_filters(flt.score_rules).scores]
    if flt.text:
        conditions.append(Generation.output.contains(flt.text, autoescape=True))
    if flt.failures:
        conditions.append(failure_condition(session, run_id))
    return select(Generation.id).join(SuiteItem, SuiteItem.id == Generation.item_id).where(*conditions)


def count_outputs(session: Session, run_id: int, flt: OutputFilter) -> int:
    """How many of the run's outputs pass the filter."""
    matching = _filtered(session, run_id, flt).subquery()
    return int(session.execute(select(func.count()).select_from(matching)).scalar_one())


def outputs_page(session: Session, run_id: int, flt: OutputFilter, page: int, page_size: int = PAGE_SIZE
                 ) -> list[ShownOutput]:
    """One page (0-based, in suite order) of the run's outputs that pass the filter, each with its question,
    references, the scores that apply to it and its ratings.

    Four queries whatever the page or run size: the page's ids, their rows and scores (``reports.outputs``),
    their ratings (single-output ratings: A/B votes belong to a pair and are shown on the Agreement and
    Adjudicate pages).
    """
    stmt = (_filtered(session, run_id, flt).order_by(SuiteItem.position, Generation.sample_index)
            .limit(page_size).offset(page * page_size))
    ids = list(session.execute(stmt).scalars())
    ratings = _page_ratings(session, ids)
    return [ShownOutput(row, ratings.get(row.generation_id, [])) for row in output_rows(session, run_id, ids)]


def outputs_table(page: list[ShownOutput]) -> list[dict[str, Any]]:
    """The page as table rows: item, question, reference, output, the scores that apply, failures, ratings."""
    return [{"item": item_label(shown.row),
             "question": shown.row.question, "reference": " | ".join(shown.row.references),
             "output": shown.row.output, "scores": score_text(shown.row), "failed": ", ".join(shown.row.failed),
             "ratings": rating_summary(shown.ratings)}
            for shown in page]


def _page_ratings(session: Session, gen_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The single-output ratings of these generations, by generation (a page holds a few dozen at most)."""
    rows = session.execute(
        select(Rating.generation_id, User.name.label("annotator"), Rating.likert, Rating.hallucination,
               Rating.hallucinated_span, Rating.spans, Rating.bias, Rating.unsafe, Rating.correction,
               Rating.comment)
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
