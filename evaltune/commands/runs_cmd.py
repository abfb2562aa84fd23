"""``evaltune runs list`` and ``evaltune runs show RUN_ID``."""

from __future__ import annotations

import json
from typing import Any

import click

from evaltune.commands.runs_outputs import outputs
from evaltune.errors import UserError
from evaltune.store import store_session


@click.group()
def runs() -> None:
    """Stored runs."""


runs.add_command(outputs)


@runs.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_runs(limit: int) -> None:
    """The latest runs: id, status, suite and its version, model and its id (model:N), seed, settings, outputs,
    date. Settings: greedy or T (temperature) and top-p, max new tokens, samples per item, and the item limit."""
    from evaltune.db import queries

    with store_session() as session:
        runs_found = queries.list_runs(session, limit=limit)
        if not runs_found:
            click.echo("no runs yet: try 'evaltune run regression --model default'")
            return
        rows = [(str(run.id), run.status, run.suite.name, run.suite.content_hash[:12], run.model_version.name,
                 f"model:{run.model_version_id}", str(run.seed), settings_text(run.generation, run.item_limit),
                 str(run.stats.get("outputs", "")), f"{run.created_at:%Y-%m-%d %H:%M}") for run in runs_found]
    header = ("id", "status", "suite", "version", "model", "model id", "seed", "settings", "outputs", "created")
    # Widths from the rows: a model name is never cut, so two adapters of one base stay apart.
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {0, 6, 8}  # numbers
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        click.echo("  ".join(cells).rstrip())


def settings_text(generation: dict[str, Any], item_limit: int | None) -> str:
    """A run's generation settings in short form: "greedy, max 48 tok" or "T=0.8 top-p=0.95, max 48 tok,
    4 samples, first 20 items"."""
    if not generation:
        return "-"
    temperature = generation.get("temperature", 0.0)
    parts = ["greedy" if not temperature else f"T={temperature:g} top-p={generation.get('top_p', 1.0):g}"]
    if "max_new_tokens" in generation:
        parts.append(f"max {generation['max_new_tokens']} tok")
    if generation.get("samples", 1) != 1:
        parts.append(f"{generation['samples']} samples")
    if item_limit is not None:
        parts.append(f"first {item_limit} items")
    return ", ".join(parts)


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Everything about the run as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every metric (each bias attribute), not only the worst.")
@click.option("--failures", is_flag=True,
              help="Instead of the metrics: each failed assertion (item, type, expected, got, reason) and a count.")
def show_run(run_id: int, as_json: bool, show_all: bool, failures: bool) -> None:
    """A run's settings, timings and metrics with 95% intervals (as the run printed them: each bias scorer's
    worst attribute unless --all).

    With --failures: each assertion of the run's suite that failed on an output, with the assertion as the suite
    wrote it, the output and the reason ('runs outputs RUN --failures' lists failing outputs by any pass/fail
    scorer)."""
    from evaltune.db.evaluation import Run
    from evaltune.summary import metrics_table, run_as_dict

    if failures:
        show_failures(run_id, as_json)
        return
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
    click.echo(metrics_table(data["metrics"], fold=not show_all) if data["metrics"]
               else "no metrics (run not finished)")


def show_failures(run_id: int, as_json: bool) -> None:
    """``runs show RUN --failures``: the failed assertions, as text or JSON."""
    from evaltune.reports.failures import assertion_summary, failed_assertions, failures_record, failures_text
    from evaltune.reports.outputs import OutputsError

    with store_session() as session:
        try:
            summary = assertion_summary(session, run_id)
            found = failed_assertions(session, run_id)
        except OutputsError as error:
            raise UserError(str(error)) from None
    if as_json:
        click.echo(json.dumps(failures_record(run_id, summary, found), indent=2, default=str))
    else:
        click.echo(failures_text(run_id, summary, found), nl=False)
