"""``evaltune worker``: run queued retune jobs (claims are atomic, so several workers may share a store)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from evaltune.errors import user_errors

if TYPE_CHECKING:
    from evaltune.db.engine import Store


@click.command()
@click.option("--once", is_flag=True,
              help="Run at most one queued job, then exit: 0 when it succeeded or none was queued, 1 when it "
                   "failed, was cancelled or came out degraded.")
@click.option("--poll", "poll_s", default=5.0, show_default=True, type=float, help="Seconds between polls.")
@click.option("--eval-limit", type=int, help="Re-evaluate on only the first N items of each suite.")
@click.option("--name", default="", help="This worker's name in the store (default host:pid).")
def worker(once: bool, poll_s: float, eval_limit: int | None, name: str) -> None:
    """Claim queued retune jobs and run them: register the base, train, register the adapter, re-evaluate.
    After each job it prints the result: the adapter's model version, the re-evaluation runs and their change
    from the base, or why the job failed."""
    from evaltune import settings
    from evaltune.db.engine import open_store
    from evaltune.retune.reevaluate import EvalSettings
    from evaltune.retune.worker import WorkerOptions, default_worker_name, run_forever, run_once

    options = WorkerOptions(home=settings.home(), name=name or default_worker_name(),
                            eval=EvalSettings(limit=eval_limit, threads=settings.threads(),
                                              code_version=settings.code_version()))
    with user_errors():
        store = open_store()
    try:
        with user_errors():  # a store that stays unreachable is a one-line message, not a traceback
            if once:
                job_id = run_once(store, options, log=click.echo)
                if job_id is None:
                    click.echo("no queued jobs")
                elif not _show_outcome(store, job_id):
                    sys.exit(1)
            else:
                click.echo(f"worker {options.name} polling every {poll_s:g}s (Ctrl-C to stop)")
                run_forever(store, options, poll_s, log=click.echo, done=lambda job_id: _show_outcome(store, job_id))
    finally:
        store.close()


def _show_outcome(store: Store, job_id: int) -> bool:
    """Print what the job came to; whether it succeeded."""
    from evaltune.db.training import RetuneJob
    from evaltune.retune.worker import outcome_lines

    with store.sessions() as session:
        click.echo("\n".join(outcome_lines(session, job_id)))
        return session.get_one(RetuneJob, job_id).status == "succeeded"
