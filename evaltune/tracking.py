"""Experiment tracking: eval runs, sweeps and retune jobs logged to MLflow, TensorBoard or Weights & Biases, when
that package is installed and the user asks (``--log-to mlflow``). Nothing is logged otherwise.

Where each writes: MLflow to ``MLFLOW_TRACKING_URI`` (MLflow's own default: ``sqlite:///mlflow.db`` in the current
folder, or ``./mlruns`` where one already has runs; all local and offline), experiment ``evaltune``; TensorBoard
event files under ``$EVALTUNE_HOME/tensorboard/RUN``; W&B to the project ``evaltune`` (``WANDB_MODE=offline`` keeps it
local). A run logs its settings as parameters and every metric with its 95% CI bounds; a sweep logs one tracker run
per cell, tagged with the sweep id; a retune job logs its config, its loss history step by step and the ids of its
lineage (job, dataset, campaign, base and adapter model versions, re-evaluation runs).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from evaltune import settings

TRACKERS = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}  # --log-to name -> package
EXPERIMENT = "evaltune"
_UNSAFE = re.compile(r"[^\w\-. :/]")  # MLflow's allowed name characters; W&B and TensorBoard take them too


class TrackingError(ValueError):
    """A tracker that cannot be used: unknown, not installed, or refusing its store. The message says the fix."""


class Tracker(Protocol):
    """One tracker run: parameters, metrics (at a step), tags."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


def check_tracker(name: str) -> None:
    """Raise ``TrackingError`` unless ``name`` is a tracker whose package is installed here."""
    if name not in TRACKERS:
        raise TrackingError(f"--log-to {name!r}: choose one of {', '.join(TRACKERS)}")
    package = "torch.utils.tensorboard" if name == "tensorboard" else TRACKERS[name]
    if importlib.util.find_spec(TRACKERS[name]) is None or importlib.util.find_spec(package) is None:
        extra = "mlflow-skinny" if name == "mlflow" else TRACKERS[name]
        raise TrackingError(f"--log-to {name}: the {TRACKERS[name]} package is not installed; install it "
                            f"(pip install {extra}, or pip install 'evaltune[tracking]') or leave --log-to out")


def _name(text: str) -> str:
    return _UNSAFE.sub("_", text)[:250]


def _flat(params: Mapping[str, Any]) -> dict[str, str]:
    return {_name(k): str(v)[:500] for k, v in params.items() if v is not None}


class _Mlflow:
    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in _flat(params).items():
            self.client.log_param(self.run_id, key, value)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, _name(key), float(value), step=step or 0)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, _name(key), str(value))


@contextmanager
def _mlflow_run(run_name: str, tags: Mapping[str, str]) -> Iterator[Tracker]:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
        run = client.create_run(experiment_id, run_name=run_name, tags={_name(k): v for k, v in tags.items()})
    except MlflowException as error:
        first = (str(error).strip().splitlines() or ["refused"])[0][:300]
        raise TrackingError(f"--log-to mlflow: MLflow refused its tracking store ({first}); set "
                            "MLFLOW_TRACKING_URI=sqlite:///mlflow.db, or MLFLOW_ALLOW_FILE_STORE=true to keep a "
                            "file: store") from None
    status = "FAILED"
    try:
        yield _Mlflow(client, run.info.run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)


class _TensorBoard:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def log_params(self, params: Mapping[str, Any]) -> None:
        text = "\n".join(f"| {k} | {v} |" for k, v in _flat(params).items())
        self.writer.add_text("params", "| name | value |\n|---|---|\n" + text)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(_name(key), float(value), global_step=step or 0)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.log_params({f"tag.{k}": v for k, v in tags.items()})


@contextmanager
def _tensorboard_run(run_name: str, tags: Mapping[str, str]) -> Iterator[Tracker]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(settings.home() / "tensorboard" / _name(run_name).replace("/", "_")))
    try:
        tracker = _TensorBoard(writer)
        tracker.set_tags(tags)
        yield tracker
    finally:
        writer.close()


class _Wandb:
    def __init__(self, run: Any) -> None:
        self.run = run

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(_flat(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.run.log({_name(k): float(v) for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.run.tags = tuple(self.run.tags or ()) + tuple(f"{k}={v}" for k, v in tags.items())


@contextmanager
def _wandb_run(run_name: str, tags: Mapping[str, str]) -> Iterator[Tracker]:
    import wandb

    run = wandb.init(project=EXPERIMENT, name=run_name, reinit=True)
    try:
        tracker = _Wandb(run)
        tracker.set_tags(tags)
        yield tracker
    finally:
        run.finish()


def tracked_run(tracker: str, run_name: str, tags: Mapping[str, str] | None = None) -> Any:
    """A context manager giving one run of ``tracker`` named ``run_name`` (checked with ``check_tracker``)."""
    check_tracker(tracker)
    opened = {"mlflow": _mlflow_run, "tensorboard": _tensorboard_run, "wandb": _wandb_run}[tracker]
    return opened(run_name, dict(tags or {}))


@dataclass(frozen=True)
class RunRecord:
    """What a tracker gets of one eval run: its id, names, settings and metrics (name -> value, low, high, n)."""

    run_id: int
    suite: str
    model: str
    params: dict[str, Any]
    metrics: dict[str, tuple[float, float, float, int]]


def run_record(outcome: Any, suite: Any, model_label: str) -> RunRecord:
    """A ``RunRecord`` from a runner outcome (``harness.runner.RunOutcome``) and its suite (``SuiteSpec``)."""
    generation = suite.generation
    params = {"suite": suite.name, "suite_version": suite.content_hash[:12], "model": model_label,
              "run_id": outcome.run_id, "items": len(suite.items), "max_new_tokens": generation.max_new_tokens,
              "temperature": generation.temperature, "top_p": generation.top_p, "samples": generation.samples,
              "chat": generation.chat, "scorers": ",".join(suite.scorers), "code_version": settings.code_version()}
    metrics = {m.name: (m.value, m.ci_low, m.ci_high, m.n) for m in outcome.metrics}
    return RunRecord(outcome.run_id, suite.name, model_label, params, metrics)


def log_runs(tracker: str, records: Sequence[RunRecord], sweep_id: int | None = None) -> list[str]:
    """Log each eval run as one tracker run; returns a line per run saying what was logged where."""
    lines = []
    for record in records:
        tags = {"evaltune.run_id": str(record.run_id), "evaltune.suite": record.suite}
        if sweep_id is not None:
            tags["evaltune.sweep_id"] = str(sweep_id)
        with tracked_run(tracker, f"run {record.run_id}: {record.suite} on {record.model}", tags) as run:
            run.log_params(record.params | ({"sweep_id": sweep_id} if sweep_id is not None else {}))
            values: dict[str, float] = {}
            for name, (value, low, high, n) in record.metrics.items():
                values |= {name: value, f"{name}.ci_low": low, f"{name}.ci_high": high, f"{name}.n": float(n)}
            run.log_metrics(values)
        lines.append(f"logged run {record.run_id} to {tracker}: {len(record.params)} settings, "
                     f"{len(record.metrics)} metrics")
    return lines


def log_retune(tracker: str, job_id: int, config: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
               lineage: Mapping[str, Any]) -> str:
    """Log a finished retune job: its config as parameters, the loss history step by step, the lineage ids as
    parameters and tags. Returns a line saying what was logged."""
    tags = {"evaltune.job_id": str(job_id), **{f"evaltune.{k}": str(v) for k, v in lineage.items() if v is not None}}
    with tracked_run(tracker, f"retune job {job_id} ({config.get('method', '?')})", tags) as run:
        run.log_params({**config, **{f"lineage.{k}": v for k, v in lineage.items()}})
        steps = 0
        for number, entry in enumerate(history, start=1):
            step = int(entry.get("step", number))
            values = {k: float(v) for k, v in entry.items()
                      if k not in ("step", "epoch") and isinstance(v, int | float) and not isinstance(v, bool)}
            if values:
                run.log_metrics(values, step=step)
                steps += 1
    return f"logged job {job_id} to {tracker}: config, {steps} steps of loss history, lineage {dict(lineage)}"


def log_evaluation(tracker: str, evaluation: Any) -> list[str]:
    """Log what ``evaltune run`` did (``evaluate.Evaluation``, or a sweep's ``SweepEvaluation``: each cell)."""
    cells = getattr(evaluation.outcome, "cells", None)
    if cells is None:
        return log_runs(tracker, [run_record(evaluation.outcome, evaluation.suite, evaluation.model.display_name)])
    records = [run_record(cell.outcome, evaluation.suite, cell.label) for cell in cells]
    return log_runs(tracker, records, sweep_id=evaluation.outcome.sweep_id)


def log_retune_job(tracker: str, sessions: Any, job_id: int, config: Mapping[str, Any],
                   history: Sequence[Mapping[str, Any]], log: Any) -> None:
    """Log a finished job (``log_retune``) with its lineage read from the store; a tracker that fails is one
    warning in the job's log, never a failed job (the adapter is registered by then)."""
    from evaltune.db.training import PreferenceDataset, RetuneJob

    try:
        with sessions() as session:
            job = session.get(RetuneJob, job_id)
            dataset = session.get(PreferenceDataset, job.dataset_id) if job else None
            lineage = {"dataset_id": job.dataset_id if job else None,
                       "campaign_id": dataset.campaign_id if dataset else None,
                       "base_model_id": job.base_model_id if job else None,
                       "adapter_model_id": job.output_model_id if job else None,
                       "follow_up_run_ids": ",".join(str(r) for r in job.follow_up_run_ids) if job else None}
        log(log_retune(tracker, job_id, config, history, lineage))
    except Exception as error:  # the tracker's own failures (its store, its network) must not fail a trained job
        log(f"warning: logging to {tracker} failed: {' '.join(str(error).split())[:300]}")
