"""The retune worker: claim a queued job, train, register the adapter, re-evaluate, record the outcome.

While a job trains, a background thread heartbeats every few seconds and picks up a cancel request, which
stops training at the next step. A job of several processes (``--processes``) trains under ``accelerate launch``
(``retune.launch``) while this process heartbeats and copies the training's log lines; a cancel ends the launched
process group. Every other stage (registering, re-evaluating, recording the outcome) is the same for both.
A job whose worker dies is failed by the next worker's ``reap_dead``, and ``evaltune jobs retry`` queues it
again: training then resumes from the job's last complete checkpoint.
Writes to the store (log lines, heartbeats, the final state) survive a short loss of the store.

A job that fails gets one sentence in ``error`` and in its log, saying what failed and the fix; the traceback
goes to the job's ``traceback`` (``evaltune jobs show N --traceback``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from evaltune import settings
from evaltune.db.engine import Store, StoreError, connection_lost, in_transaction
from evaltune.db.evaluation import ModelVersion, Run, Suite
from evaltune.db.training import RetuneJob
from evaltune.harness.backends.base import BackendError
from evaltune.harness.backends.registry import LoadOptions
from evaltune.retune import jobs
from evaltune.retune.collapse import check_after_training, check_lines
from evaltune.retune.config import RetuneConfig, load_config
from evaltune.retune.datasets import dataset_records, dataset_summaries
from evaltune.retune.launch import LaunchFailed, engine_problem, train_launched
from evaltune.retune.reevaluate import EvalSettings, base_run, change_line, compare_runs, reevaluate, register_and_load
from evaltune.retune.register import register_base, register_merged
from evaltune.retune.train import TrainResult
from evaltune.tracking import log_retune_job


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


def run_forever(store: Store, options: WorkerOptions, poll_s: float = 5.0, log: Callable[[str], None] = print,
                done: Callable[[int], object] = lambda job_id: None) -> None:
    """Run queued jobs one after another, polling the store when the queue is empty or unreachable; ``done`` is
    called with each job's id once it has finished."""
    while True:
        try:
            claimed = run_once(store, options, log)
            if claimed is not None:
                done(claimed)
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


class _Stage:
    """What the job is doing now, named in its failure message ("training failed: ...")."""

    def __init__(self) -> None:
        self.now = "reading the job"


def _register_base(store: Store, job_id: int, options: WorkerOptions, log: Callable[[str], None]) -> None:
    """Register the base a job names by spec (``jobs.base_spec``) as a model version, loading it once: queueing
    the job did not, so that queueing stays cheap."""
    with store.sessions() as session:
        job = session.get_one(RetuneJob, job_id)
        spec, registered = job.base_spec, job.base_model_id
    if registered is not None or spec is None:
        return
    model = jobs.base_model(spec, options.eval.threads)
    version_id = register_base(store.sessions, model)
    _write(store, job_id, lambda session: jobs.set_base(session, job_id, version_id))
    log(f"base model {model.display_name or model.location} registered as model version {version_id}")


def _job_inputs(store: Store, job_id: int) -> _JobInputs:
    with store.session_scope() as session:
        job = session.get(RetuneJob, job_id)
        assert job is not None and job.base_model_id is not None  # claimed by us, its base registered
        jobs.check_base(session, jobs.Base(version_id=job.base_model_id))
        base = session.get_one(ModelVersion, job.base_model_id)
        try:
            config, notes = load_config(job.config, job.method)
        except ValueError as error:  # written by another evaltune version, or edited by hand
            raise jobs.JobError(f"{error}; this job cannot run: queue a new one with 'evaltune retune'") from error
        # A job queued past ``jobs.submit`` (a script, an older evaltune) may not fit its dataset: say so in one
        # line rather than fail inside the trainer on a missing column. The row minimum was the queuer's choice.
        dataset = dataset_summaries(session, [job.dataset_id])
        problem = jobs.dataset_problem(dataset[0], job.method, force=True) if dataset else (
            f"dataset {job.dataset_id} is no longer in the store; queue a new job on another dataset")
        if problem:
            raise jobs.JobError(problem)
        # Queueing checked the machine it ran on; this worker may be another one.
        lacking = engine_problem(config)
        if lacking:
            raise jobs.JobError(f"{lacking.message}; this worker ({socket.gethostname()}) cannot run job {job_id}")
        records = dataset_records(session, job.dataset_id, "train", weights=True)
        return _JobInputs(config, notes, records, base.location, base.id, list(job.eval_suites))


def failure_message(error: Exception, stage: str, job_id: int) -> str:
    """One sentence a person can act on: what failed while doing ``stage``, and the fix."""
    retry = f"'evaltune jobs retry {job_id}'"
    if isinstance(error, jobs.JobError):
        text = str(error)
    elif isinstance(error, BackendError | LaunchFailed) and "out of memory" not in str(error).lower():
        text = f"{stage} failed: {error}" + (f"; 'evaltune jobs show {job_id} --traceback' shows the processes' "
                                             f"output, and {retry} resumes from the last checkpoint"
                                             if isinstance(error, LaunchFailed) else "")
    elif type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower():
        text = (f"{stage} ran out of memory; queue the job again with a smaller --batch-size or --max-length "
                "(--gradient-accumulation-steps keeps the effective batch)")
    elif isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        text = (f"{stage} failed: cannot use{where} ({error.strerror}); free disk space or fix the folder's "
                f"permissions under EVALTUNE_HOME, then {retry}")
    else:
        first = (str(error).strip().splitlines() or [""])[0]
        text = (f"{stage} failed with an unexpected {type(error).__name__}{': ' + first if first else ''}; "
                f"'evaltune jobs show {job_id} --traceback' shows where (worth a bug report), and {retry} runs it "
                "again")
    return " ".join(text.split())  # one line, whatever the library put in its message


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
    stage = _Stage()
    try:
        _execute(store, job_id, options, log, beat, stage)
    except StoreError:
        raise
    except Exception as error:
        message, details = failure_message(error, stage.now, job_id), traceback.format_exc()
        if isinstance(error, LaunchFailed):  # the launched processes' traceback, not the worker's
            details = f"{error.output}\n\n{details}"
        log(f"failed: {message}")
        _write(store, job_id, lambda session: jobs.finish(session, job_id, "failed", error=message,
                                                          traceback=details))
    finally:
        beat.stop()


def _drop_partial_checkpoints(folder: Path, log: Callable[[str], None]) -> None:
    """Remove checkpoints a killed worker left half-written, so that a retried job resumes from a whole one.

    The Trainer writes ``trainer_state.json`` last (``checkpoints`` is where ``retune.train`` puts them)."""
    for checkpoint in sorted(folder.glob("checkpoint-*")) if folder.is_dir() else []:
        if not (checkpoint / "trainer_state.json").is_file():
            log(f"removing the incomplete checkpoint {checkpoint.name} left by an earlier attempt")
            shutil.rmtree(checkpoint, ignore_errors=True)


def _train(inputs: _JobInputs, output_dir: Path, options: WorkerOptions, log: Callable[[str], None],
           beat: _Heartbeat) -> TrainResult:
    """Train in this process, or (``processes`` above 1) in a launched process group; the same result either way."""
    from evaltune.retune.train import train

    if inputs.config.processes > 1:
        return train_launched(inputs.base_location, inputs.records, inputs.config, output_dir, log,
                              should_stop=lambda: beat.cancelled, threads=options.eval.threads)
    return train(inputs.base_location, inputs.records, inputs.config, output_dir, log,
                 should_stop=lambda: beat.cancelled)


def _execute(store: Store, job_id: int, options: WorkerOptions, log: Callable[[str], None],
             beat: _Heartbeat, stage: _Stage) -> None:
    if options.eval.threads > 0:
        settings.apply_threads(options.eval.threads)
    stage.now = "loading the base model to register it"
    _register_base(store, job_id, options, log)
    stage.now = "reading the job"
    inputs = _job_inputs(store, job_id)
    config, base_id = inputs.config, inputs.base_id
    for note in inputs.config_notes:
        log(f"warning: {note}")
    stage.now = "training"
    log(f"training {config.method} on {len(inputs.records)} rows from {inputs.base_location}")
    started = time.perf_counter()
    output_dir = options.home / "adapters" / f"job-{job_id}"
    _drop_partial_checkpoints(output_dir / "checkpoints", log)
    result = _train(inputs, output_dir, options, log, beat)
    log(f"trained in {time.perf_counter() - started:.1f}s")
    if result.stopped:
        _write(store, job_id, lambda session: jobs.finish(session, job_id, "cancelled",
                                                          error="cancelled while training"))
        return
    details = {"method": config.method, "warnings": result.warnings, "history": result.history[-3:],
               "processes": result.world_size}
    stage.now = "registering the adapter"
    # The adapter is evaluated on the device and in the dtype it was trained for (one process: the evaluation
    # itself is not sharded).
    evals = replace(options.eval, load=LoadOptions(dtype=config.dtype, device=config.device))
    version_id, backend, info = register_and_load(store.sessions, base_id, result.adapter_dir, job_id, details,
                                                  evals)
    log(f"adapter registered as model version {version_id}")
    if result.merged_dir:
        with store.session_scope() as session:
            adapter_version = session.get(ModelVersion, version_id)
            assert adapter_version is not None
            merged_id = register_merged(session, adapter_version, result.merged_dir).id
        log(f"merged model ({result.merged_dir}) registered as model version {merged_id}")
    stage.now = f"re-evaluating adapter model:{version_id}"
    try:
        check_after_training(store.sessions, backend, info, evals, log)
        run_ids = reevaluate(store.sessions, backend, info, base_id, inputs.suites, evals, log)
    finally:
        backend.close()
    _write(store, job_id, lambda session: jobs.finish(session, job_id, "succeeded", output_model_id=version_id,
                                                      follow_up_run_ids=run_ids))
    if config.log_to:  # --log-to: settings, loss history and lineage ids to the experiment tracker
        log_retune_job(config.log_to, store.sessions, job_id, config.as_json(), result.history, log)


def outcome_lines(session: Session, job_id: int, collapse: bool = True) -> list[str]:
    """What a finished job came to, for a person: its state, the adapter and the base, the collapse check (unless
    not ``collapse``: a caller that shows it elsewhere), and for each re-evaluation run the change from the base's
    run of that suite, metric by metric."""
    job = session.get_one(RetuneJob, job_id)
    if job.status not in ("succeeded", "degraded"):
        lines = [f"job {job.id} {job.status}" + (f": {job.error}" if job.error else "")]
        if job.traceback:
            lines.append(f"  'evaltune jobs show {job.id} --traceback' shows where it failed")
        return lines
    lines = [f"job {job.id} {job.status}: adapter model:{job.output_model_id} ({job.method}) from base "
             f"{jobs.base_label(job)}"]
    if collapse:
        lines.extend(f"  {line}" for line in check_lines(job.collapse_check))
    for run_id in job.follow_up_run_ids:
        suite = session.scalar(select(Suite.name).join(Run, Run.suite_id == Suite.id).where(Run.id == run_id))
        baseline = base_run(session, job.base_model_id, suite) if suite and job.base_model_id else None
        if baseline is None:
            lines.append(f"  {suite}: run {run_id}; the base has no completed run of it to compare with")
            continue
        lines.append(f"  {suite}: run {run_id} against the base's run {baseline}")
        try:
            lines.extend(f"    {change_line(row)}" for row in compare_runs(session, baseline, run_id))
        except Exception as error:  # a report that cannot be built must not hide the job's result
            lines.append(f"    (no comparison: {error})")
    if not job.follow_up_run_ids:
        lines.append("  no suites re-run (queue with --eval-after SUITE to compare with the base)")
    return lines
