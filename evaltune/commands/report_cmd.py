"""``evaltune report BASELINE CANDIDATE`` and ``evaltune report --history SUITE``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from evaltune.errors import UserError, user_errors


@contextmanager
def report_errors() -> Iterator[None]:
    """The report's and the gate file's user errors as ``UserError`` (one line, exit 2)."""
    from evaltune.reports.gates import GateFileError
    from evaltune.reports.load import ReportError

    with user_errors():
        try:
            yield
        except (ReportError, GateFileError) as error:
            raise UserError(str(error)) from error


def write_or_echo(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` (saying where), or print it."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.command()
@click.argument("baseline", type=int, required=False)
@click.argument("candidate", type=int, required=False)
@click.option("--format", "fmt", type=click.Choice(["html", "md", "markdown", "json"]), default="md",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--history", "history_suite", metavar="SUITE", help="A metric's trend over the runs of SUITE.")
@click.option("--model", help="With --history: only this model and its adapters (name or model:N).")
@click.option("--metric", help="With --history: the metric to trend (default: every metric).")
@click.option("--sweep", "sweep_id", type=int, metavar="SWEEP_ID",
              help="The matrix of a sweep (every variant × model) instead of two runs.")
@click.option("--baseline", "baseline_cell", metavar="CELL",
              help="With --sweep: the cell the others are compared with, as 'variant@model' (default: the first).")
def report(baseline: int | None, candidate: int | None, fmt: str, output: str | None,
           history_suite: str | None, model: str | None, metric: str | None, sweep_id: int | None,
           baseline_cell: str | None) -> None:
    """Compare CANDIDATE run against BASELINE run on their shared items (paired deltas, flips, tags).

    With --history SUITE instead: each metric over the runs of a suite, as a table (md/json) or plot (html).

    With --sweep N [--baseline CELL] instead: a sweep's matrix, each cell's metrics and its paired deltas against
    the baseline cell with Benjamini–Hochberg q-values across the matrix.
    """
    from evaltune.reports.render import compare_runs, render_report

    fmt = "md" if fmt == "markdown" else fmt
    if baseline_cell is not None and sweep_id is None:
        raise UserError("--baseline CELL goes with --sweep SWEEP_ID; two runs are compared as "
                        "'evaltune report BASELINE CANDIDATE'")
    if sweep_id is not None:
        if baseline is not None or history_suite:
            raise UserError("--sweep shows one sweep's matrix: give it without run ids or --history")
        _sweep_report(sweep_id, baseline_cell, fmt, output)
        return
    if history_suite:
        from evaltune.reports.history import history_of, render_history

        with report_errors():
            trend = history_of(history_suite, model=model, metric=metric)
        write_or_echo(render_history(trend, fmt), output)
        return
    if baseline is None or candidate is None:
        raise UserError("give BASELINE and CANDIDATE run ids, or --history SUITE")
    with report_errors():
        result = compare_runs(baseline, candidate)
    write_or_echo(render_report(result, fmt), output)


def _sweep_report(sweep_id: int, baseline: str | None, fmt: str, output: str | None) -> None:
    from evaltune.reports.sweep_matrix import build_matrix
    from evaltune.reports.sweep_render import render_matrix
    from evaltune.store import store_session

    with report_errors(), store_session() as session:
        matrix = build_matrix(session, sweep_id, baseline)
    write_or_echo(render_matrix(matrix, fmt), output)
