"""``evaltune gate BASELINE CANDIDATE --gate gates.yaml``: exit 0 pass, 1 a gate failed, 2 error."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evaltune.commands.report_cmd import report_errors


def apply_gate(baseline: int, candidate: int, gate_file: str, junit: str | None, summary: str | None) -> bool:
    """Check the gate, print one line per rule, write JUnit / Markdown when asked; True when all pass."""
    from evaltune.reports.junit import render_junit
    from evaltune.reports.markdown import render_markdown
    from evaltune.reports.render import gate_runs

    with report_errors():
        result, outcome = gate_runs(baseline, candidate, gate_file)
    for item in outcome.results:
        click.echo(f"{'PASS' if item.passed else 'FAIL'}  {item.rule.metric} {item.rule.kind}: {item.message}")
    if junit:
        Path(junit).write_text(render_junit(outcome), encoding="utf-8")
    if summary:
        Path(summary).write_text(render_markdown(result, outcome), encoding="utf-8")
    click.echo(f"gate {'passed' if outcome.passed else 'FAILED'}: verdict {result.verdict}")
    return outcome.passed


@click.command()
@click.argument("baseline", type=int)
@click.argument("candidate", type=int)
@click.option("--gate", "gate_file", required=True, type=click.Path(dir_okay=False),
              help="YAML rules per metric: min, max, no_significant_regression: {min_effect: X}.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write the gate results as JUnit XML.")
@click.option("--summary", type=click.Path(dir_okay=False), help="Write the report with gates as Markdown.")
def gate(baseline: int, candidate: int, gate_file: str, junit: str | None, summary: str | None) -> None:
    """Compare CANDIDATE with BASELINE and check the gate file. Exit 0 pass, 1 a gate failed, 2 error."""
    if not apply_gate(baseline, candidate, gate_file, junit, summary):
        sys.exit(1)
