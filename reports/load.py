"""Reading what a comparison needs from the store into plain records (no statistics here)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, Run, RunMetric, Score, SuiteItem
from evaltune.db.queries import lineage
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.reports.outputs import question_of
from evaltune.reports.records import RunInfo


class ReportError(ValueError):
    """A comparison that cannot be made (unknown run, no shared items); the message says which."""


@dataclass(frozen=True)
class OutputTotals:
    """One scorer's values over all of a run's outputs: how many were scored and their sum."""

    n: int
    total: float


@dataclass
class RunData:
    """One run as the report reads it: per scorer the mean value per item key, and each item's text."""

    info: RunInfo
    scores: dict[str, dict[str, float]]  # scorer -> item key -> mean over samples
    # item key -> {"tags", "prompt", "question", "context", "references", "output", "generation_ids"}
    items: dict[str, dict[str, Any]]
    metrics: list[RunMetric]
    totals: dict[str, OutputTotals]  # scorer -> its values over every output (not per item)


# (suite id, item limit) -> item key -> what the report shows of the item
SuiteItems = dict[tuple[int, int | None], dict[str, dict[str, Any]]]


def load_run(session: Session, run_id: int, suite_items: SuiteItems | None = None) -> RunData:
    """The run's scores, items and metrics; raises ``ReportError`` when there is no such run.

    ``suite_items`` keeps each suite's items as read, for the next run of the same suite: runs compared with each
    other mostly share one, and its items' JSON fields are the larger part of reading a run."""
    run = session.get(Run, run_id)
    if run is None:
        raise ReportError(f"no run with id {run_id} (see `evaltune runs`)")
    info = RunInfo(run.id, run.suite.name, run.suite.content_hash[:12], run.model_version.name,
                   run.model_version_id, run.created_at.isoformat(), seed=run.seed,
                   generation=dict(run.generation or {}), item_limit=run.item_limit, code_version=run.code_version)
    known = suite_items if suite_items is not None else {}
    version = (run.suite_id, run.item_limit)
    if version not in known:
        known[version] = _suite_items(session, run.suite_id, run.item_limit)
    scores, totals = _scores(session, run_id)
    return RunData(info, scores, _items(session, run_id, known[version]), list(run.metrics), totals)


def _scores(session: Session, run_id: int) -> tuple[dict[str, dict[str, float]], dict[str, OutputTotals]]:
    item_id = func.coalesce(Score.item_id, Generation.item_id)
    stmt = (
        select(Score.scorer, SuiteItem.key, Score.value)
        .select_from(Score)
        .outerjoin(Generation, Generation.id == Score.generation_id)
        .join(SuiteItem, SuiteItem.id == item_id)
        .where(Score.run_id == run_id, Score.value.is_not(None))
    )
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for scorer, key, value in session.execute(stmt):
        if value is not None:
            sums[scorer][key].append(float(value))
    # Several samples per item: the item's score is their mean, so items stay the paired unit.
    scores = {scorer: {k: sum(v) / len(v) for k, v in per_key.items()} for scorer, per_key in sums.items()}
    totals = {scorer: OutputTotals(sum(map(len, per_key.values())), sum(map(sum, per_key.values())))
              for scorer, per_key in sums.items()}
    return scores, totals


def _suite_items(session: Session, suite_id: int, limit: int | None) -> dict[str, dict[str, Any]]:
    """Each item of the suite version (its first ``limit``, as a run with --limit ran them): its tags, question,
    context and references, by item key."""
    stmt = select(SuiteItem.key, SuiteItem.tags, SuiteItem.input, SuiteItem.item_metadata, SuiteItem.context,
                  SuiteItem.references).where(SuiteItem.suite_id == suite_id)
    if limit is not None:
        stmt = stmt.where(SuiteItem.position < limit)
    return {key: {"tags": [str(t) for t in tags or []], "question": question_of(item_input, metadata),
                  "context": context, "references": [str(r) for r in refs or []]}
            for key, tags, item_input, metadata, context, refs in session.execute(stmt)}


def _items(session: Session, run_id: int, suite_items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    stmt = (
        select(SuiteItem.key, Generation.prompt, Generation.output, Generation.id)
        .join(SuiteItem, SuiteItem.id == Generation.item_id)
        .where(Generation.run_id == run_id)
        .order_by(Generation.sample_index)
    )
    items: dict[str, dict[str, Any]] = {}
    for key, prompt, output, generation_id in session.execute(stmt):
        entry = items.get(key)
        if entry is None:  # the first sample's prompt and output stand for the item
            entry = items[key] = {**suite_items[key], "prompt": prompt, "output": output, "generation_ids": []}
        entry["generation_ids"].append(generation_id)
    return items


def load_lineage(session: Session, model_version_id: int) -> list[dict[str, Any]]:
    """The model's parent chain (itself first) with, for adapters, the retune job and its dataset."""
    chain = []
    for version in lineage(session, model_version_id):
        entry: dict[str, Any] = {"id": version.id, "name": version.name, "backend": version.backend,
                                 "location": version.location, "adapter_path": version.adapter_path,
                                 "adapter_sha256": version.adapter_sha256, "retune_job": None}
        job = session.get(RetuneJob, version.retune_job_id) if version.retune_job_id is not None else None
        if job is not None:
            dataset = session.get(PreferenceDataset, job.dataset_id)
            entry["retune_job"] = {
                "id": job.id, "method": job.method, "status": job.status, "config": job.config,
                "collapse_check": job.collapse_check,
                "dataset": None if dataset is None else {"id": dataset.id, "name": dataset.name,
                                                         "strategy": dataset.strategy, "counts": dataset.counts},
            }
        chain.append(entry)
    return chain


def degraded_line(chain: list[dict[str, Any]]) -> str:
    """``DEGRADED: ...`` with the figures when a model of the chain (``load_lineage``) comes from a retune job
    whose adapter failed the collapse check (``retune.collapse``), else ""."""
    for entry in chain:
        job = entry.get("retune_job") or {}
        check = job.get("collapse_check") or {}
        if check.get("degraded"):
            return (f"DEGRADED: model {entry['id']} comes from retune job {job['id']}, whose adapter does worse than "
                    f"its base at what the retune was not meant to change: {check.get('summary')}")
    return ""
