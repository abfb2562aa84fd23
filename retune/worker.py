"""The retune worker: claim a queued job, train, register the adapter, re-evaluate, record the outcome.

While a job trains, a background thread heartbeats every few seconds and picks up a cancel request, which
stops training at the next step. A job whose worker dies is failed by the next worker's ``reap_dead``, and
``evaltune jobs retry`` queues it again: training then resumes from the job's last complete checkpoint.
Writes to the store (log lines, heartbeats, the final state) survive a short loss of the store.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import exc
from sqlalchemy.orm import Session

from evaltune import settings
from evaltune.db.engine import Store, StoreError, connection_lost, in_transaction
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import RetuneJob
from evaltune.retune import jobs
from evaltune.retune.config import RetuneConfig, load_config
from evaltune.retune.datasets import dataset_records
from evaltune.retune.reevaluate import EvalSettings, reevaluate, register_and_load
from evaltune.retune.register import register_merged


def default_worker_name() -> str:
    """host:pid, unique among the workers sharing a store."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    home: Path
    name: str = field(default_factory=default_worker_name)
    eval: EvalSettings = field(default_factory=EvalSettings)
    heartbeat_s: float = 10.0


class _Heartbeat(threading.Thread):
    """Heartbeats the job until stopped; ``cancelled`` turns true once someone asked to cancel it."""

    def __init__(self, store: Store, job_id: int, worker: str, every_s: float) -> None:
        super().__init__(daemon=True)
        self.store, self.job_id, self.worker, self.every_s = store, job_id, worker, every_s
        self.cancelled = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            try:
                with self.store.session_scope() as session:
                    self.cancelled = jobs.heartbeat(session, self.job_id, self.worker) or self.cancelled
            except exc.DBAPIError as error:
                if not connection_lost(error):
                    raise
                # The store is away (a restart): beat again next time. Training goes on meanwhile.

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.every_s + 5)


def run_once(
    store: Store, options: WorkerOptions, log: Callable[[str], None] = print, job_id: int | None = None
) -> int | None:
    """Reap dead jobs, claim one queued job (``job_id`` if given) and run it to its end; the job's id, or None
    if there was nothing to claim."""
    with store.session_scope() as session:
        for dead in jobs.reap_dead(session):
            log(f"job {dead} marked failed: {session.get_one(RetuneJob, dead, populate_existing=True).error}")
        job = jobs.claim(session, options.name, job_id)
        job_id = job.id if job else None
    if job_id is None:
        return None
    log(f"job {job_id}: claimed by {options.name}")
    execute(store, job_id, options)
    return job_id


def run_forever(store: Store, options: WorkerOptions, poll_s: float = 5.0, log: Callable[[str], None] = print) -> None:
    """Run queued jobs one after another, polling the store when the queue is empty or unreachable."""
    while True:
        try:
            claimed = run_once(store, options, log)
        except (StoreError, exc.DBAPIError) as error:
            if isinstance(error, exc.DBAPIError) and not connection_lost(error):
                raise
            log(f"the store at {store.url} is unreachable; trying again in {poll_s:g} s")
            claimed = None
        if claimed is None:
            time.sleep(poll_s)


@dataclass(frozen=True)
class _JobInputs:
    config: RetuneConfig
    config_notes: list[str]  # stored settings this version does not know, dropped (see config.load_config)
    records: list[dict[str, Any]]
    base_location: str
    base_id: int
    suites: list[str]


def _job_inputs(store: Store, job_id: int) -> _JobInputs:
    with store.session_scope() as session:
        job = session.get(RetuneJob, job_id)
        assert job is not None  # just claimed by us
        base = session.get(ModelVersion, job.base_model_id)
        if base is None:
            raise LookupError(f"base model version {job.base_model_id} is not in the store")
        if base.adapter_path:
            raise ValueError("retuning an adapter model version is not supported yet: pick its base")
        config, notes = load_config(job.config, job.method)
        records = dataset_records(session, job.dataset_id, "train", weights=True)
        return _JobInputs(config, notes, records, base.location, base.id, list(job.eval_suites))


def _write(store: Store, job_id: int, work: Callable[[Session], None]) -> None:
    hint = f"job {job_id} stays running until a worker marks it failed; then 'evaltune jobs retry {job_id}'"
    in_transaction(store.sessions, work, hint=hint)


def execute(store: Store, job_id: int, options: WorkerOptions) -> None:
    """Run one claimed job; its final state (succeeded, failed, cancelled) and log land in the store.

    Raises ``StoreError`` only when the store stays unreachable, so that nothing can be recorded."""

    def log(line: str) -> None:
        _write(store, job_id, lambda session: jobs.append_log(session, job_id, line))

    beat = _Heartbeat(store, job_id, options.name, options.heartbeat_s)
    beat.start()
    try:
        _execute(store, job_id, options, log, beat)
    except StoreError:
        raise
    except Exception as error:
        log(traceback.format_exc(limit=8))
        message = f"{type(error).__name__}: {error}"
        _write(store, job_id, lambda session: jobs.finish(session, job_id, "failed", error=message))
    finally:
        beat.stop()


def _drop_partial_checkpoints(folder: Path, log: Callable[[str], None]) -> None:
    """Remove checkpoints a killed worker left half-written, so that a retried job resumes from a whole one.

    The Trainer writes ``trainer_state.json`` last (``checkpoints`` is where ``retune.train`` puts them)."""
    for checkpoint in sorted(folder.glob("checkpoint-*")) if folder.is_dir() else []:
        if not (checkpoint / "trainer_state.json").is_file():
            log(f"removing the incomplete checkpoint {checkpoint.name} left by an earlier attempt")
            shutil.rmtree(checkpoint, ignore_errors=True)


def _execute(store: Store, job_id: int, options: WorkerOptions, log: Callable[[str], None],
             beat: _Heartbeat) -> None:
    from evaltune.retune.train import train

    inputs = _job_inputs(store, job_id)
    config, base_id = inputs.config, inputs.base_id
    for note in inputs.config_notes:
        log(f"warning: {note}")
    if options.eval.threads > 0:
        settings.apply_threads(options.eval.threads)
    log(f"training {config.method} on {len(inputs.records)} rows from {inputs.base_location}")
    started = time.perf_counter()
    output_dir = options.home / "adapters" / f"job-{job_id}"
    _drop_partial_checkpoints(output_dir / "checkpoints", log)
    result = train(inputs.base_location, inputs.records, config, output_dir, log, should_stop=lambda: beat.cancelled)
    log(f"trained in {time.perf_counter() - started:.1f}s")
    if result.stopped:
        _write(store, job_id, lambda session: jobs.finish(session, job_id, "cancelled",
                                                          error="cancelled while training"))
        return
    details = {"method": config.method, "warnings": result.warnings, "history": result.history[-3:]}
    version_id, backend, info = register_and_load(store.sessions, base_id, result.adapter_dir, job_id, details,
                                                  options.eval)
    log(f"adapter registered as model version {version_id}")
    if result.merged_dir:
        with store.session_scope() as session:
            adapter_version = session.get(ModelVersion, version_id)
            assert adapter_version is not None
            merged_id = register_merged(session, adapter_version, result.merged_dir).id
        log(f"merged model ({result.merged_dir}) registered as model version {merged_id}")
    try:
        run_ids = reevaluate(store.sessions, backend, info, base_id, inputs.suites, options.eval, log)
    finally:
        backend.close()
    _write(store, job_id, lambda session: jobs.finish(session, job_id, "succeeded", output_model_id=version_id,
                                                      follow_up_run_ids=run_ids))
