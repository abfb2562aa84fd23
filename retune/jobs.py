"""The retune job queue, in the store: enqueue, claim atomically, heartbeat, log, finish, cancel, reap, retry.

Several workers may poll one store. ``claim`` hands a queued job to exactly one of them: on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED`` (a competing worker skips the locked row instead of waiting for it), on
SQLite with a conditional ``UPDATE ... WHERE status = 'queued'`` whose row count says who won. Each function
works inside the caller's transaction; the caller commits (``Store.session_scope``).

A worker that dies (kill -9, a crash, a lost machine) leaves its job ``running``. The next worker to poll
fails it: soon when the dead worker ran on the same machine (its default name is ``host:pid``, that process
is gone and it missed a few heartbeats), else once its heartbeat is ``HEARTBEAT_TIMEOUT`` old. ``retry``
queues a failed job again.

``submit`` is how a person queues a job (the command line, the app): it refuses, before anything is stored or
loaded, a job that cannot succeed: a dataset with no or too few training rows or rows for another method, a
suite to re-run that does not load, a base model that cannot be trained, an engine this machine lacks
(DeepSpeed, bitsandbytes, a GPU: ``retune.launch.engine_problem``). ``enqueue`` only writes the row.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaltune.db.base import utcnow
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.harness.model_resolution import ResolvedModel
from evaltune.retune.config import RetuneConfig
from evaltune.retune.strategies import strategies

if TYPE_CHECKING:
    from evaltune.retune.datasets import DatasetSummary

HEARTBEAT_TIMEOUT = timedelta(minutes=5)  # a running job silent this long has lost its worker
# A worker whose process is gone is dead once it has also missed this many seconds of heartbeats (it sends one
# every 10 s): containers with host networking share the host's name but not its process ids, so a missing
# pid alone may be a live worker in another container.
GONE_GRACE = timedelta(seconds=30)
FINISHED = ("succeeded", "degraded", "failed", "cancelled")  # degraded: see retune.collapse
# Fewer training rows than one batch at the default batch size (8) make every epoch a single optimiser step over
# the same few answers: the adapter learns those answers by heart, not the preference behind them. ``--force``
# trains anyway.
MIN_TRAIN_ROWS = 8


class JobError(ValueError):
    """A job request that cannot be honoured (unknown job or dataset, wrong state); the message says why and the
    fix. ``option`` names the command-line option at fault, when one is."""

    def __init__(self, message: str, option: str = "") -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Base:
    """The model a job trains from: a registered model version (``version_id``), or a model resolved from a spec
    (``model``) that the worker registers when it starts the job, since registering loads the weights."""

    version_id: int | None = None
    model: ResolvedModel | None = None


def dataset_problem(dataset: DatasetSummary, method: str | None = None, force: bool = False) -> str | None:
    """Why a job cannot train ``method`` (default: the dataset's own) on the dataset, with the fix; None if it can.
    Below ``MIN_TRAIN_ROWS`` rows it cannot unless ``force``; with no rows, or rows for another method, never."""
    name = f"dataset {dataset.id} ({dataset.strategy})"
    if method and method != dataset.method:
        builders = [n for n, s in strategies().items() if s.method == method]
        build = f"--strategy {' or '.join(builders)}" if builders else f"rows in {method}'s columns"
        return (f"{name} holds {dataset.method} rows, which {method} cannot train on; retune it with --method "
                f"{dataset.method}, or build a {method} dataset with {build}")
    if dataset.train_rows == 0:
        held = f" (its {dataset.holdout_rows} rows are all held out)" if dataset.holdout_rows else ""
        return (f"{name} has no training rows{held}; build one from more ratings with 'evaltune data build' "
                "('evaltune data list' shows the datasets and their rows)")
    if dataset.train_rows < MIN_TRAIN_ROWS and not force:
        return (f"{name} has {dataset.train_rows} training rows, fewer than the {MIN_TRAIN_ROWS} a retune needs "
                f"(below one batch the adapter learns those answers by heart); rate more items and build it again, "
                "or train on it anyway with 'evaltune retune --force'")
    return None


def check_dataset(session: Session, dataset_id: int, method: str, force: bool = False) -> DatasetSummary:
    """The dataset, if a ``method`` job can train on it; raises ``JobError`` saying why not and the fix."""
    from evaltune.retune.datasets import dataset_summaries  # pandas: only when a job is checked

    found = dataset_summaries(session, [dataset_id])
    if not found:
        raise JobError(f"no dataset {dataset_id} in the store; see 'evaltune data list' or 'evaltune data build'",
                       option="--dataset")
    problem = dataset_problem(found[0], method, force)
    if problem:
        raise JobError(problem, option="--dataset")
    return found[0]


def check_suites(names: Sequence[str]) -> list[str]:
    """The suites to re-run, as a worker anywhere will find them (a file by its absolute path); raises
    ``JobError`` with the loader's message for the first that does not load."""
    from evaltune.harness.loaders import load_suite
    from evaltune.harness.suite import SuiteError

    found = []
    for name in names:
        try:
            suite = load_suite(name)
        except SuiteError as error:
            raise JobError(f"{error}; the job re-runs these suites after training", option="--eval-after") from None
        if suite.variants:  # a re-evaluation is one run per suite, compared with the base's run of the same suite
            raise JobError(f"{name} has prompt variants ({', '.join(v.name for v in suite.variants)}); give a suite "
                           "that asks one way (a template: and generation.system_prompt instead of prompts:)",
                           option="--eval-after")
        path = Path(name).expanduser()
        found.append(str(path.resolve()) if path.is_file() else name)
    return found


def check_base(session: Session, base: Base) -> None:
    """Raises ``JobError`` unless the base is a model LoRA can train: transformers weights, not an adapter."""
    if base.model is not None:
        if base.model.backend_kind != "hf":
            raise JobError(f"{base.model.display_name} is served by the {base.model.backend_kind} backend, whose "
                           "weights cannot be trained here; pass 'default', a model folder or a hub id",
                           option="--model")
        return
    version = session.get(ModelVersion, base.version_id)
    if version is None:
        raise JobError(f"no model version {base.version_id} in the store; see 'evaltune models list'",
                       option="--model")
    if version.adapter_path:
        base_name = f"model:{version.parent_id}" if version.parent_id is not None else "model (its base folder)"
        raise JobError(f"model:{version.id} is an adapter; retuning an adapter is not supported yet: retune its "
                       f"base {base_name}", option="--model")
    if version.backend != "hf":
        raise JobError(f"model:{version.id} is served by the {version.backend} backend, whose weights cannot be "
                       "trained here; pass a model version with local weights, 'default' or a model folder",
                       option="--model")


def check_engines(config: RetuneConfig) -> None:
    """Raises ``JobError`` when this machine lacks what the job trains with (a package, a CUDA GPU, enough GPUs).
    The worker checks again: it may run on another machine."""
    from evaltune.retune.launch import engine_problem

    problem = engine_problem(config)
    if problem:
        raise JobError(problem.message, option=problem.option)


def submit(
    session: Session, *, dataset_id: int, base: Base, config: RetuneConfig, eval_suites: Sequence[str] = (),
    force: bool = False,
) -> RetuneJob:
    """Queue a job after checking it can succeed (``check_base``, ``check_dataset``, ``check_suites``,
    ``check_engines``); raises ``JobError`` with the reason and the fix, having stored nothing. Loads no model."""
    check_engines(config)
    check_base(session, base)
    check_dataset(session, dataset_id, config.method, force)
    suites = check_suites(eval_suites)
    return enqueue(session, dataset_id=dataset_id, base_model_id=base.version_id, base_model=base.model,
                   config=config, eval_suites=suites)


def enqueue(
    session: Session, *, dataset_id: int, config: RetuneConfig, base_model_id: int | None = None,
    base_model: ResolvedModel | None = None, eval_suites: Sequence[str] = (),
) -> RetuneJob:
    """A new queued job training ``config.method`` on the dataset's train split from the base model version
    ``base_model_id``, or from ``base_model``, which the worker registers. Checks only that the dataset exists:
    ``submit`` checks the rest."""
    if session.get(PreferenceDataset, dataset_id) is None:
        raise JobError(f"no dataset {dataset_id} in the store; see 'evaltune data build'")
    if (base_model_id is None) == (base_model is None):
        raise JobError("a job needs exactly one base: a model version id or a resolved model")
    job = RetuneJob(status="queued", method=config.method, config=config.as_json(), dataset_id=dataset_id,
                    base_model_id=base_model_id, base_spec=base_spec(base_model) if base_model else None,
                    eval_suites=list(eval_suites), log="")
    session.add(job)
    session.flush()
    return job


def base_spec(model: ResolvedModel) -> dict[str, Any]:
    """What a job stores of a base model it names by spec (the inverse of ``base_model``)."""
    return {"backend": model.backend_kind, "location": model.location, "served_model": model.served_model,
            "display_name": model.display_name, "default_cache": model.default_cache}


def base_model(spec: dict[str, Any], threads: int = 0) -> ResolvedModel:
    """The base model a job names by ``base_spec``, ready to load."""
    return ResolvedModel(backend_kind=str(spec["backend"]), location=str(spec["location"]),
                         served_model=spec.get("served_model"), display_name=str(spec.get("display_name") or ""),
                         threads=threads, default_cache=spec.get("default_cache"))


def set_base(session: Session, job_id: int, version_id: int) -> None:
    """Record the model version a worker registered for the base the job named by spec."""
    session.execute(update(RetuneJob).where(RetuneJob.id == job_id).values(base_model_id=version_id))


def base_label(job: RetuneJob) -> str:
    """The job's base as listings show it: ``model:ID``, or the name of the model it names until registered."""
    if job.base_model_id is not None:
        return f"model:{job.base_model_id}"
    spec = job.base_spec or {}
    return f"{spec.get('display_name') or spec.get('location') or '?'} (not registered yet)"


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
    """Mark the job succeeded, failed or cancelled, with an error message and any other fields to set. A job
    asked to finish ``succeeded`` whose adapter failed the collapse check (``retune.collapse``) ends ``degraded``."""
    if status not in FINISHED:
        raise JobError(f"a job finishes as one of {FINISHED}, not {status!r}")
    check = session.execute(select(RetuneJob.collapse_check).where(RetuneJob.id == job_id)).scalar_one_or_none()
    if status == "succeeded" and (check or {}).get("degraded"):
        status = "degraded"
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
        status="queued", worker=None, error=None, traceback=None, heartbeat_at=None, started_at=None,
        finished_at=None, cancel_requested=False, log=RetuneJob.log + f"queued again (was {job.status}: {previous})\n"))
    return session.get_one(RetuneJob, job_id, populate_existing=True)


def list_jobs(session: Session, status: str | None = None, limit: int = 50) -> list[RetuneJob]:
    """The most recent jobs first, optionally of one status."""
    query = select(RetuneJob).order_by(RetuneJob.id.desc()).limit(limit)
    if status:
        query = query.where(RetuneJob.status == status)
    return list(session.scalars(query))
