"""``evaltune sweeps list`` and ``evaltune sweeps show SWEEP_ID``."""

from __future__ import annotations

import json

import click

from evaltune.commands.report_cmd import report_errors
from evaltune.store import store_session


@click.group()
def sweeps() -> None:
    """Sweeps: every prompt variant × every model of one 'evaltune run', each cell a run."""


@sweeps.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_sweeps(limit: int) -> None:
    """The latest sweeps: id, status, cells whose run completed, variants, models, date."""
    from evaltune.reports.sweep_matrix import sweep_summaries

    with store_session() as session:
        found = sweep_summaries(session, limit=limit)
    if not found:
        click.echo("no sweeps yet: 'evaltune run SUITE --model A --model B' (or a suite with prompts:) makes one")
        return
    rows = [("id", "status", "done", "name", "variants", "models", "created")]
    rows += [(str(s.id), s.status, f"{s.completed}/{s.cells}", s.name, ", ".join(s.variants), ", ".join(s.models),
              s.created_at[:16].replace("T", " ")) for s in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@sweeps.command("show")
@click.argument("sweep_id", type=int)
@click.option("--baseline", metavar="CELL",
              help="The cell the others are compared with, as 'variant@model' (default: the first cell).")
@click.option("--json", "as_json", is_flag=True, help="Every number of the matrix as JSON.")
def show_sweep(sweep_id: int, baseline: str | None, as_json: bool) -> None:
    """A sweep's matrix: each cell's metrics with 95% intervals (* best per metric), and each cell's delta against
    the baseline cell on shared items with Benjamini–Hochberg q-values across the whole matrix."""
    from evaltune.reports.sweep_matrix import build_matrix, matrix_record, matrix_text

    with report_errors(), store_session() as session:
        matrix = build_matrix(session, sweep_id, baseline)
    if as_json:
        click.echo(json.dumps(matrix_record(matrix), indent=2, allow_nan=False))
    else:
        click.echo(matrix_text(matrix), nl=False)
