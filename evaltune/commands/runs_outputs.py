"""``evaltune runs outputs RUN``: what a run produced, item by item, with the scores that apply to each."""

from __future__ import annotations

import shutil
import sys

import click

from evaltune.errors import UserError
from evaltune.reports.outputs import FAILURE_RULE
from evaltune.reports.outputs_format import FORMATS, TABLE_WIDTH
from evaltune.store import store_session


@click.command("outputs")
@click.argument("run_id", type=int)
@click.option("--failures", is_flag=True, help=f"Only the outputs that failed: {FAILURE_RULE}.")
@click.option("--tag", help="Only the items with this tag; a tag no item has is refused, with the suite's tags.")
@click.option("--scorer", "scorers", multiple=True,
              help="Only this scorer's scores (repeatable); with --failures only its verdicts count.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table: cut to the terminal's width; jsonl and csv: every text in full.")
def outputs(run_id: int, failures: bool, tag: str | None, scorers: tuple[str, ...], fmt: str) -> None:
    """Each output of a run beside its item's question and references, with the scores that apply to it.

    The question is the suite item's input as written (its text, or its last user message), not the
    prompt the model was given.
    """
    from evaltune.reports.outputs import OutputQuery, OutputsError, run_outputs
    from evaltune.reports.outputs_format import write_outputs

    query = OutputQuery(failures=failures, tag=tag, scorers=scorers)
    with store_session() as session:
        try:
            rows = run_outputs(session, run_id, query)
        except OutputsError as error:
            option = {"tag": "--tag: ", "scorer": "--scorer: "}.get(error.what, "")
            raise UserError(f"{option}{error}") from None
    # Straight to stdout, not click.echo: echo strips escape sequences when piped, and a CSV keeps the text whole.
    width = shutil.get_terminal_size((TABLE_WIDTH, 24)).columns
    write_outputs(rows, fmt, sys.stdout, width=width)
    if fmt == "table":
        picked = " that failed" if failures else ""
        tagged = f" tagged {tag}" if tag else ""
        sys.stdout.write(f"{len(rows)} outputs{picked} of run {run_id}{tagged}; --format jsonl or csv for the "
                         "full text\n")
