"""The retune job queue, in the store: enqueue, claim atomically, heartbeat, log, finish, cancel, reap, retry.

Several workers may poll one store. ``claim`` hands a queued job to exactly one of them: on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED`` (a competing worker skips the locked row instead of waiting for it), on
SQLite with a conditional ``UPDATE ... WHERE status = 'queued'`` whose row count says who won. Each function
works inside the caller's transaction; the caller commits (``Store.session_scope``).

A worker that dies (kill -9, a crash, a lost machine) leaves its job ``running``. The next worker to poll
fails it: soon when the dead worker ran on the same machine (its default name is ``host:pid``, that process
is gone and it missed a few heartbeats), else once its heartbeat is ``HEARTBEAT_TIMEOUT`` old. ``retry``
queues a failed job again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaltune.db.base import utcnow
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.retune.config import RetuneConfig

HEARTBEAT_TIMEOUT = timedelta(minutes=5)  # a running job silent this long has lost its worker
# A worker whose process is gone is dead once it has also missed this many seconds of heartbeats (it sends one
# every 10 s): containers with host networking share the host's name but not its process ids, so a missing
# pid alone may be a live worker in another container.
GONE_GRACE = timedelta(seconds=30)
FINISHED = ("succeeded", "failed", "cancelled")


class JobError(ValueError):
    """A job request that cannot be honoured (unknown job or dataset, wrong state); the message says why."""


def enqueue(
    session: Session, *, dataset_id: int, base_model_id: int, config: RetuneConfig,
    eval_suites: Sequence[str] = (),
) -> RetuneJob:
    """A new queued job training ``config.method`` on the dataset's train split from the base model version."""
    if session.get(PreferenceDataset, dataset_id) is None:
        raise JobError(f"no dataset {dataset_id} in the store; see 'evaltune data build'")
    job = RetuneJob(status="queued", method=config.method, config=config.as_json(), dataset_id=dataset_id,
                    base_model_id=base_model_id, eval_suites=list(eval_suites), log="")
    session.add(job)
    session.flush()
    return job


def claim(session: Session, worker: str, job_id: int | None = None) -> RetuneJob | None:
    """The oldest queued job (or job ``job_id`` if still queued), now running under ``worker``; None when there
    is none. Never the same job twice."""
    now = utcnow()
    wanted = select(RetuneJob.id).where(RetuneJob.status == "queued")
    if job_id is not None:
        wanted = wanted.where(RetuneJob.id == job_id)
    wanted = wanted.order_by(RetuneJob.id).limit(1)
    claimed = {"status": "running", "worker": worker, "started_at": now, "heartbeat_at": now}
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(wanted.with_for_update(skip_locked=True)).scalar_one_or_none()
        if found is None:
            return None
        session.execute(update(RetuneJob).where(RetuneJob.id == found).values(**claimed))
        return session.get(RetuneJob, found, populate_existing=True)
    while True:
        found = session.execute(wanted).scalar_one_or_none()
        if found is None:
            return None
        won = session.execute(
            update(RetuneJob).where(RetuneJob.id == found, RetuneJob.status == "queued").values(**claimed)
        )
        if getattr(won, "rowcount", 0) == 1:
            return session.get(RetuneJob, found, populate_existing=True)
        # Another worker took it between our SELECT and UPDATE: try the next one.


def heartbeat(session: Session, job_id: int, worker: str) -> bool:
    """Record that ``worker`` is alive on the job; returns whether cancellation was requested."""
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id, RetuneJob.worker == worker)
                    .values(heartbeat_at=utcnow()))
    return bool(session.execute(select(RetuneJob.cancel_requested).where(RetuneJob.id == job_id)).scalar_one())


def append_log(session: Session, job_id: int, text: str) -> None:
    """Append lines to the job's log (one UPDATE; concurrent appends do not overwrite each other)."""
    line = text if text.endswith("\n") else text + "\n"
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id).values(log=RetuneJob.log + line))


def finish(session: Session, job_id: int, status: str, error: str | None = None, **fields: Any) -> None:
    """Mark the job succeeded, failed or cancelled, with an error message and any other fields to set."""
    if status not in FINISHED:
        raise JobError(f"a job finishes as one of {FINISHED}, not {status!r}")
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id)
                    .values(status=status, error=error, finished_at=utcnow(), **fields))


def cancel(session: Session, job_id: int) -> str:
    """Cancel a queued job at once, or ask the worker of a running one to stop; returns the new state."""
    job = session.get(RetuneJob, job_id)
    if job is None:
        raise JobError(f"no retune job {job_id}; see 'evaltune jobs list'")
    if job.status == "queued":
        won = session.execute(update(RetuneJob).where(RetuneJob.id == job_id, RetuneJob.status == "queued")
                              .values(status="cancelled", finished_at=utcnow(), cancel_requested=True))
        if getattr(won, "rowcount", 0) == 1:
            return "cancelled"
    if job.status in FINISHED:
        raise JobError(f"job {job_id} already {job.status}")
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id).values(cancel_requested=True))
    return "cancel requested"


def _local_pid(worker: str) -> int | None:
    """The process id of a worker named ``host:pid`` (the default) on this machine; None for any other name."""
    host, _, pid = worker.rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user
    stat = Path(f"/proc/{pid}/stat")  # Linux: a killed process its parent has not waited for yet is a zombie
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _ago(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{(now - moment).total_seconds():.0f} s ago"


def why_dead(job: RetuneJob, now: datetime | None = None, timeout: timedelta = HEARTBEAT_TIMEOUT) -> str | None:
    """Why the worker of this running job is presumed dead, or None while it may be alive (or the job is not
    running): its process on this machine is gone, or it has sent no heartbeat for ``timeout``."""
    if job.status != "running":
        return None
    now = now or utcnow()
    pid = _local_pid(job.worker or "")
    silent = job.heartbeat_at is None or job.heartbeat_at < now - GONE_GRACE
    if pid is not None and silent and _process_gone(pid):
        return f"worker {job.worker} died: its process is gone (last heartbeat {_ago(job.heartbeat_at, now)})"
    if job.heartbeat_at is None or job.heartbeat_at < now - timeout:
        return (f"worker {job.worker} stopped sending heartbeats (last {_ago(job.heartbeat_at, now)}, "
                f"the limit is {timeout.total_seconds():.0f} s)")
    return None


def _registered(session: Session, job_id: int) -> str:
    version = session.scalar(select(ModelVersion.id).where(ModelVersion.retune_job_id == job_id).limit(1))
    return f"its adapter was already registered as model:{version}" if version else "no adapter was registered"


def reap_dead(session: Session, timeout: timedelta = HEARTBEAT_TIMEOUT) -> list[int]:
    """Fail the running jobs whose worker is dead (see ``why_dead``), saying why in ``error``; their ids."""
    now = utcnow()
    reaped = []
    for job in list(session.scalars(select(RetuneJob).where(RetuneJob.status == "running").order_by(RetuneJob.id))):
        reason = why_dead(job, now, timeout)
        if reason is None:
            continue
        error = f"{reason}; {_registered(session, job.id)}. Run 'evaltune jobs retry {job.id}' to queue it again"
        done = session.execute(
            update(RetuneJob).where(RetuneJob.id == job.id, RetuneJob.status == "running",
                                    RetuneJob.worker == job.worker)
            .values(status="failed", finished_at=now, error=error, log=RetuneJob.log + f"failed: {reason}\n")
        )
        if getattr(done, "rowcount", 0) == 1:  # not already reaped, or finished, by someone else meanwhile
            reaped.append(job.id)
    return reaped


def retry(session: Session, job_id: int) -> RetuneJob:
    """Queue a failed or cancelled job again under the same id; its training resumes from its last checkpoint."""
    job = session.get(RetuneJob, job_id)
    if job is None:
        raise JobError(f"no retune job {job_id}; see 'evaltune jobs list'")
    if job.status not in ("failed", "cancelled"):
        raise JobError(f"job {job_id} is {job.status}; only a failed or cancelled job can be retried")
    previous = job.error or job.status
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id, RetuneJob.status == job.status).values(
        status="queued", worker=None, error=None, heartbeat_at=None, started_at=None, finished_at=None,
        cancel_requested=False, log=RetuneJob.log + f"queued again (was {job.status}: {previous})\n"))
    return session.get_one(RetuneJob, job_id, populate_existing=True)


def list_jobs(session: Session, status: str | None = None, limit: int = 50) -> list[RetuneJob]:
    """The most recent jobs first, optionally of one status."""
    query = select(RetuneJob).order_by(RetuneJob.id.desc()).limit(limit)
    if status:
        query = query.where(RetuneJob.status == status)
    return list(session.scalars(query))
