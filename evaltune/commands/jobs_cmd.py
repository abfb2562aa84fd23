"""``evaltune jobs list | show | cancel | retry``: the retune job queue."""

from __future__ import annotations

from typing import Any

import click

from evaltune.errors import UserError, user_errors
from evaltune.store import store_session


@click.group()
def jobs() -> None:
    """Retune jobs: their state, logs and results."""


# db.training.JOB_STATES, written out: importing it here would load SQLAlchemy for every command's start.
STATES = ("queued", "running", "succeeded", "degraded", "failed", "cancelled")


@jobs.command("list")
@click.option("--status", type=click.Choice(STATES))
def list_jobs(status: str | None) -> None:
    """The most recent jobs first."""
    from evaltune.retune.jobs import base_label, why_dead
    from evaltune.retune.jobs import list_jobs as query

    with store_session() as session:
        rows = [(j.id, j.status, j.method, j.dataset_id, base_label(j), j.output_model_id, j.worker, why_dead(j))
                for j in query(session, status)]
    if not rows:
        click.echo("no retune jobs yet: try 'evaltune retune --dataset ID'")
    for job_id, state, method, dataset, base, output, worker, dead in rows:
        result = f"-> model:{output}" if output else ""
        click.echo(f"{job_id:>4}  {state:<10} {method:<4} dataset {dataset:<4} base {base} {result}"
                   f"{'  (' + worker + ')' if worker else ''}")
        if dead:
            click.echo(f"      ! {dead}: the next 'evaltune worker' marks it failed")


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--traceback", "with_traceback", is_flag=True,
              help="Also print the traceback of the error that failed the job (for a bug report).")
def show(job_id: int, with_traceback: bool) -> None:
    """One job: settings, state, result (the adapter, the re-evaluation runs and their change from the base, or
    why it failed) and its full log."""
    from evaltune.db.training import RetuneJob
    from evaltune.retune.collapse import check_lines
    from evaltune.retune.jobs import FINISHED, base_label, why_dead
    from evaltune.retune.worker import outcome_lines

    with store_session() as session:
        job = session.get(RetuneJob, job_id)
        if job is None:
            raise UserError(f"no retune job {job_id}; see 'evaltune jobs list'")
        # An adapter worse than its base (retune.collapse) is said first, before anything else about the job.
        checked = check_lines(job.collapse_check)
        first, later = (checked, []) if (job.collapse_check or {}).get("degraded") else ([], checked)
        for line in first:
            click.echo(line)
        click.echo(f"job {job.id}: {job.status} ({job.method}), dataset {job.dataset_id}, base {base_label(job)}")
        for line in later:
            click.echo(line)
        dead = why_dead(job)
        if dead:
            click.echo(f"warning: {dead}; the next 'evaltune worker' marks the job failed")
        click.echo(f"created {job.created_at:%Y-%m-%d %H:%M:%S}; worker {job.worker or '-'}; "
                   f"heartbeat {job.heartbeat_at or '-'}")
        if job.status in FINISHED:
            click.echo("\n".join(outcome_lines(session, job.id, collapse=False)))  # said above
        click.echo(f"config: {_settings_line(job.config)}")
        for problem in _config_problems(job.config, job.method):
            click.echo(f"warning: {problem}")
        click.echo("log:\n" + (job.log or "(empty)"))
        if with_traceback:
            click.echo("traceback:\n" + (job.traceback or f"(none: job {job.id} did not fail with an error)"))


def _settings_line(stored: dict[str, Any]) -> str:
    """A stored config as one readable line: ``epochs 3.0, learning_rate 0.0001, ...``."""
    shown = {key: value for key, value in stored.items() if key not in ("schema_version", "method")}
    return ", ".join(f"{key} {', '.join(map(str, value)) or 'none' if isinstance(value, list) else value}"
                     for key, value in shown.items())


def _config_problems(stored: dict[str, Any], method: str) -> list[str]:
    """What a worker of this version would say about the stored config: settings it drops, or why it fails."""
    from evaltune.retune.config import load_config

    try:
        return load_config(stored, method)[1]
    except ValueError as error:
        return [f"a worker of this version cannot run this config: {error}"]


@jobs.command("cancel")
@click.argument("job_id", type=int)
def cancel(job_id: int) -> None:
    """Cancel a queued job, or ask the worker of a running one to stop at its next step."""
    from evaltune.db.engine import open_store
    from evaltune.retune.jobs import JobError
    from evaltune.retune.jobs import cancel as cancel_job

    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            state = cancel_job(session, job_id)
    except JobError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    click.echo(f"job {job_id}: {state}")


@jobs.command("retry")
@click.argument("job_id", type=int)
def retry(job_id: int) -> None:
    """Queue a failed or cancelled job again; its training resumes from its last checkpoint."""
    from evaltune.retune.jobs import JobError
    from evaltune.retune.jobs import retry as retry_job

    try:
        with store_session() as session:
            retry_job(session, job_id)
    except JobError as error:
        raise UserError(str(error)) from error
    click.echo(f"job {job_id}: queued again; 'evaltune worker' runs it, resuming from its last checkpoint")
