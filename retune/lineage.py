"""Where a model or a run came from: run -> model version -> retune job -> dataset -> rows -> ratings, to the base."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import ModelVersion, Run
from evaltune.db.queries import lineage
from evaltune.db.ratings import Rating
from evaltune.db.training import PreferenceDataset, PreferenceRow, RetuneJob


def _job_lines(session: Session, job_id: int) -> list[str]:
    job = session.get(RetuneJob, job_id)
    if job is None:
        return [f"    made by retune job {job_id} (no longer in the store)"]
    lines = [f"    made by retune job {job.id}: {job.method}, {job.status}, follow-up runs {job.follow_up_run_ids}"]
    dataset = session.get(PreferenceDataset, job.dataset_id)
    if dataset is None:
        return lines
    rows = session.scalars(select(PreferenceRow.rating_ids).where(PreferenceRow.dataset_id == dataset.id)).all()
    rating_ids = sorted({int(r) for ids in rows for r in ids})
    simulated = session.scalar(select(func.count()).where(Rating.id.in_(rating_ids), Rating.simulated.is_(True)))
    lines.append(f"    from dataset {dataset.id} {dataset.name!r}: strategy {dataset.strategy} {dataset.params}, "
                 f"{len(rows)} rows")
    lines.append(f"    from {len(rating_ids)} ratings of campaign {dataset.campaign_id}"
                 f" ({simulated or 0} simulated)" + (f": ids {rating_ids[:10]}{' ...' if len(rating_ids) > 10 else ''}"
                                                    if rating_ids else ""))
    return lines


def trace(session: Session, spec: str) -> list[str]:
    """Lines describing the chain behind ``spec``: ``run:N``, or ``model:N`` / ``N`` for a model version.
    Raises ``LookupError`` for an unknown id and ``ValueError`` for a spec of another form."""
    kind, _, number = spec.strip().rpartition(":")
    if not number.isdigit() or kind not in ("", "model", "run"):
        raise ValueError(f"{spec!r}: give model:ID, run:ID or a model version id")
    lines = []
    model_id = int(number)
    if kind == "run":
        run = session.get(Run, model_id)
        if run is None:
            raise LookupError(f"no run {number} in the store")
        lines.append(f"run {run.id}: suite {run.suite.name}, {run.status}, created {run.created_at:%Y-%m-%d %H:%M}")
        model_id = run.model_version_id
    for version in lineage(session, model_id):
        lines.append(_version_line(version))
        if version.retune_job_id is not None:
            lines.extend(_job_lines(session, version.retune_job_id))
    return lines


def _version_line(version: ModelVersion) -> str:
    if version.adapter_path:
        return (f"model:{version.id} {version.name!r}: adapter {version.adapter_path} "
                f"sha256 {(version.adapter_sha256 or '')[:16]}..., parent model:{version.parent_id}")
    return f"model:{version.id} {version.name!r}: {version.backend} {version.location}"
