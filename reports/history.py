"""A metric's trend over the runs of a suite (all its versions), optionally one model and its adapters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from html import escape

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evaltune.db.engine import open_store
from evaltune.db.evaluation import ModelVersion, Run, Suite
from evaltune.db.queries import lineage
from evaltune.reports.load import ReportError
from evaltune.reports.markdown import fmt, md_cell
from evaltune.reports.records import json_safe

HISTORY_SCHEMA_VERSION = 2  # 1: the unversioned JSON of earlier releases; 2 only adds the field


@dataclass(frozen=True)
class Point:
    run_id: int
    created_at: str
    model: str
    suite_version: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class History:
    suite: str
    model: str | None
    points: list[Point]


def history_of(suite: str, model: str | None = None, metric: str | None = None, url: str | None = None) -> History:
    """Every completed run of ``suite``, oldest first, with its metrics (one, when ``metric`` is given).

    ``model`` (a model name or ``model:N``) keeps that model's runs and those of adapters descending from it.
    Raises ``ReportError`` when the suite has no runs.
    """
    store = open_store(url)
    try:
        with store.session_scope() as session:
            return History(suite, model, _points(session, suite, model, metric))
    finally:
        store.close()


def _points(session: Session, suite: str, model: str | None, metric: str | None) -> list[Point]:
    stmt = (select(Run).join(Suite).where(Suite.name == suite, Run.status == "completed")
            .options(selectinload(Run.metrics), selectinload(Run.model_version), selectinload(Run.suite))
            .order_by(Run.created_at, Run.id))
    runs = list(session.execute(stmt).scalars())
    if not runs:
        raise ReportError(f"no completed runs of suite {suite!r} (see `evaltune runs list`)")
    if model is not None:
        wanted = _model_ids(session, model)
        runs = [r for r in runs if wanted & {v.id for v in lineage(session, r.model_version_id)}]
    points = [Point(r.id, r.created_at.isoformat(), r.model_version.name, r.suite.content_hash[:12], m.name,
                    m.value, m.ci_low, m.ci_high, m.n)
              for r in runs for m in r.metrics if metric is None or m.name == metric]
    if not points:
        raise ReportError(f"no runs of suite {suite!r} have metric {metric!r}" if metric else
                          f"no runs of suite {suite!r} for model {model!r}")
    return points


def _model_ids(session: Session, model: str) -> set[int]:
    if model.startswith("model:") and model[6:].isdigit():
        return {int(model[6:])}
    ids = set(session.execute(select(ModelVersion.id).where(ModelVersion.name == model)).scalars())
    if not ids:
        raise ReportError(f"no model named {model!r} (see `evaltune models list`)")
    return ids


def render_history(history: History, fmt_name: str) -> str:
    """``json`` (every point), ``md`` (a table per metric) or ``html`` (tables and an SVG line per metric)."""
    if fmt_name == "json":
        return json.dumps(json_safe({"schema_version": HISTORY_SCHEMA_VERSION, "suite": history.suite,
                                     "model": history.model, "points": [asdict(p) for p in history.points]}),
                          indent=2) + "\n"
    by_metric: dict[str, list[Point]] = {}
    for point in history.points:
        by_metric.setdefault(point.metric, []).append(point)
    if fmt_name == "md":
        lines = [f"# History of {md_cell(history.suite)}" + (f" for {md_cell(history.model)}" if history.model else "")]
        for name, points in by_metric.items():
            lines += ["", f"## {md_cell(name)}", "", "| run | date | model | suite version | value [95% CI] | n |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {p.run_id} | {p.created_at[:16]} | {md_cell(p.model)} | {p.suite_version} | {fmt(p.value)} "
                      f"[{fmt(p.ci_low)}, {fmt(p.ci_high)}] | {p.n} |" for p in points]
        return "\n".join(lines) + "\n"
    body = "".join(f"<h2>{escape(name)}</h2>{trend_svg(points)}" for name, points in by_metric.items())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>History of {escape(history.suite)}'
            f"</title></head><body><h1>History of {escape(history.suite)}</h1>{body}</body></html>\n")


def trend_svg(points: list[Point]) -> str:
    """One metric over runs: a line through the values and a vertical bar for each 95% interval."""
    width, height, pad = 520, 200, 30
    lows = [p.ci_low for p in points if p.ci_low == p.ci_low] + [p.value for p in points]
    highs = [p.ci_high for p in points if p.ci_high == p.ci_high] + [p.value for p in points]
    low, high = min(lows), max(highs)
    high = high if high > low else low + 1.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return height - pad - (value - low) / (high - low) * (height - 2 * pad)

    xs = [pad + i * step for i in range(len(points))]
    parts = ['<polyline fill="none" stroke="#0969da" stroke-width="2" points="'
             + " ".join(f"{x:.1f},{y(p.value):.1f}" for x, p in zip(xs, points, strict=True)) + '"/>']
    for x, p in zip(xs, points, strict=True):
        if p.ci_low == p.ci_low and p.ci_high == p.ci_high:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y(p.ci_low):.1f}" y2="{y(p.ci_high):.1f}" '
                         f'stroke="#8c959f"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y(p.value):.1f}" r="3" fill="#0969da"><title>run {p.run_id} '
                     f"{escape(p.model)}: {p.value:.4f}</title></circle>")
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="10" text-anchor="middle">{p.run_id}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">' + "".join(parts) + "</svg>")
