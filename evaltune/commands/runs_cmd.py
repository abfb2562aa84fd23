"""``evaltune runs list`` and ``evaltune runs show RUN_ID``."""

from __future__ import annotations

import json

import click

from evaltune.errors import UserError
from evaltune.store import store_session


@click.group()
def runs() -> None:
    """Stored runs."""


@runs.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_runs(limit: int) -> None:
    """The latest runs: id, status, suite, model, outputs, date."""
    from evaltune.db import queries

    with store_session() as session:
        rows = queries.list_runs(session, limit=limit)
        if not rows:
            click.echo("no runs yet: try 'evaltune run regression --model default'")
            return
        click.echo(f"{'id':>5}  {'status':<10} {'suite':<20} {'model':<30} {'outputs':>7}  created")
        for run in rows:
            click.echo(f"{run.id:>5}  {run.status:<10} {run.suite.name[:20]:<20} {run.model_version.name[:30]:<30}"
                       f" {run.stats.get('outputs', ''):>7}  {run.created_at:%Y-%m-%d %H:%M}")


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Everything about the run as JSON.")
def show_run(run_id: int, as_json: bool) -> None:
    """A run's settings, timings and metrics with 95% intervals."""
    from evaltune.db.evaluation import Run
    from evaltune.summary import metrics_table, run_as_dict

    with store_session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise UserError(f"no run {run_id} in the store; see 'evaltune runs list'")
        data = run_as_dict(run)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo(f"run {data['id']} [{data['status']}]: suite {data['suite']} ({data['suite_version']})"
               f" on {data['model']} (model version {data['model_version_id']}), seed {data['seed']}")
    click.echo(f"created {data['created_at']}, finished {data['finished_at'] or '-'}")
    stats = data["stats"]
    if stats:
        click.echo(", ".join(f"{k} {v}" for k, v in stats.items()))
    if data["error"]:
        click.echo(f"error: {data['error']}")
    click.echo("")
    click.echo(metrics_table(data["metrics"]) if data["metrics"] else "no metrics (run not finished)")
