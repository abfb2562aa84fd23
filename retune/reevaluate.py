"""After training: register the adapter as a model version and re-run the named suites on it.

The adapter's model version takes the fingerprint the HF backend computes for base + adapter, so that the
re-evaluation run (and any later ``evaltune run --model model:ID``) lands on that same version. Each suite
runs with the suite's own generation settings and the job's seed, as the base run did; when the base has a
completed run of the suite, the comparison (paired deltas) goes into the job log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evaltune.db.evaluation import ModelVersion, Run, Suite
from evaltune.harness.backends.registry import LoadOptions
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ModelRecord, ResolvedModel
from evaltune.harness.runner import RunOptions, run_suite
from evaltune.harness.store_records import store_model_version

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalSettings:
    seed: int = 0
    limit: int | None = None  # only the first N items of each suite (tests, quick looks)
    batch_size: int | None = None
    threads: int = 0
    code_version: str = ""
    load: LoadOptions = field(default_factory=LoadOptions)  # the job's --device and --dtype, for its evaluations


def register_and_load(
    sessions: sessionmaker[Session], base_id: int, adapter_dir: Path, job_id: int, details: dict[str, Any],
    settings: EvalSettings,
) -> tuple[int, Any, ModelRecord]:
    """Load base + adapter, register it as a model version (parent = base); the version id, backend, info."""
    with sessions.begin() as session:
        base = session.get(ModelVersion, base_id)
        if base is None:
            raise LookupError(f"base model version {base_id} is gone from the store")
        model = replace(ResolvedModel.from_version(base, threads=settings.threads),
                        adapter_path=str(adapter_dir.resolve()), display_name=f"{base.name} + retune-{job_id}")
        base_fingerprint = base.fingerprint
    backend = model.load(settings.load)
    info = model.record(parent_id=base_id, retune_job_id=job_id,
                        details={**details, "base_fingerprint": base_fingerprint})
    with sessions.begin() as session:
        version_id = store_model_version(session, info, backend.fingerprint)
    return version_id, backend, info


def base_run(session: Session, base_id: int, suite_name: str) -> int | None:
    """The base model's latest completed run of the suite: what a re-evaluation is compared with."""
    return session.execute(
        select(Run.id).join(Suite, Suite.id == Run.suite_id)
        .where(Run.model_version_id == base_id, Suite.name == suite_name, Run.status == "completed")
        .order_by(Run.id.desc()).limit(1)
    ).scalar_one_or_none()


def compare_runs(session: Session, baseline_id: int, candidate_id: int) -> list[dict[str, Any]]:
    """Per metric: baseline, candidate, paired delta with its 95% interval and q-value (reports.compare)."""
    from evaltune.reports.compare import build_report

    report = build_report(session, baseline_id, candidate_id)
    return [{"metric": m.name, "baseline": m.baseline.value, "candidate": m.candidate.value, "delta": m.delta,
             "ci": [m.delta_ci_low, m.delta_ci_high], "q": m.q_value, "verdict": m.verdict}
            for m in report.metrics]


def change_line(row: dict[str, Any]) -> str:
    """One ``compare_runs`` row as a person reads it: metric, base -> adapter, the change with its interval."""
    low, high = row["ci"]
    return (f"{row['metric']} {row['baseline']:.3f} -> {row['candidate']:.3f} ({row['delta']:+.3f}, 95% CI "
            f"{low:+.3f} to {high:+.3f}; {row['verdict']})")


def reevaluate(
    sessions: sessionmaker[Session], backend: Any, info: ModelRecord, base_id: int, suites: Sequence[str],
    settings: EvalSettings, log: Log,
) -> list[int]:
    """Run each suite on the loaded adapter; returns the new run ids and logs the comparison with the base."""
    run_ids = []
    for name in suites:
        suite = load_suite(name)
        options = RunOptions(settings.seed, None, settings.batch_size, settings.limit, settings.code_version)
        outcome = run_suite(sessions, suite, backend, info, options)
        run_ids.append(outcome.run_id)
        log(f"re-evaluated {suite.name}: run {outcome.run_id}")
        with sessions.begin() as session:
            baseline = base_run(session, base_id, suite.name)
            if baseline is None:
                log(f"no completed run of {suite.name} on the base model: nothing to compare with")
                continue
            try:
                for row in compare_runs(session, baseline, outcome.run_id):
                    log(f"compare run {baseline} -> {outcome.run_id}: {change_line(row)}")
            except Exception as error:  # a comparison that fails must not fail a trained, evaluated job
                log(f"warning: comparing run {baseline} with {outcome.run_id} failed: {error}")
    return run_ids
