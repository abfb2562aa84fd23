"""``evaltune run SUITE --model M``: generate, score, store, print a summary."""

from __future__ import annotations

import sys
import time

import click

from evaltune.errors import UserError, check_scorer_names, user_errors
from evaltune.summary import format_summary


class _Progress:
    """A single updating line on stderr (one line per update when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        line = f"  {done}/{total} outputs ({100 * done / max(total, 1):.0f}%), {rate:.1f}/s"
        click.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty or done == total)


@click.command()
@click.argument("suite")
@click.option("--model", "-m", default="default", show_default=True,
              help="'default', a local folder, a hub id, openai:URL, PREFIX:TARGET of an installed backend, "
                   "or a stored model id (model:N).")
@click.option("--adapter", help="A PEFT adapter folder to apply on top of --model.")
@click.option("--model-name", help="The model name an openai: endpoint serves.")
@click.option("--scorers", help="Comma-separated scorer names (default: the suite's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the suite's batch size.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--baseline", type=int, help="After the run, compare it with this run id (a Markdown report).")
@click.option("--gate", "gate_file", type=click.Path(dir_okay=False),
              help="With --baseline: check this gate file; exit 1 when a gate fails.")
def run(suite: str, model: str, adapter: str | None, model_name: str | None, scorers: str | None,
        seed: int, batch_size: int | None, limit: int | None, as_json: bool, baseline: int | None,
        gate_file: str | None) -> None:
    """Run SUITE (a built-in name such as 'regression', or a suite file) against a model.

    Prints a table of metric, value, 95% CI and n. A run interrupted part-way is resumed
    by running the same command again. With --baseline (and --gate) the new run is compared with
    (and gated against) a stored run: exit 1 when a gate fails, 2 on a bad gate file.
    """
    if gate_file and baseline is None:
        raise UserError("--gate needs --baseline RUN_ID (the run to compare against)")
    if gate_file:
        from evaltune.commands.report_cmd import report_errors
        from evaltune.reports.gates import load_gates

        with report_errors():  # a bad gate file should fail before the run, not after it
            load_gates(gate_file)
    from evaltune.evaluate import EvaluateRequest, evaluate

    scorer_names = tuple(s.strip() for s in scorers.split(",") if s.strip()) if scorers else None
    check_scorer_names(scorer_names or ())
    request = EvaluateRequest(
        suite=suite, model=model, adapter=adapter, model_name=model_name, seed=seed,
        scorers=scorer_names, batch_size=batch_size, limit=limit,
    )
    with user_errors():
        evaluation = evaluate(request, on_progress=_Progress())
    click.echo(format_summary(evaluation, as_json=as_json))
    if baseline is not None:
        _compare(baseline, evaluation.outcome.run_id, gate_file)


def _compare(baseline: int, candidate: int, gate_file: str | None) -> None:
    from evaltune.commands.gate_cmd import apply_gate
    from evaltune.commands.report_cmd import report_errors
    from evaltune.reports.render import compare_runs, render_report

    click.echo("")
    if gate_file:
        if not apply_gate(baseline, candidate, gate_file, junit=None, summary=None):
            sys.exit(1)
        return
    with report_errors():
        click.echo(render_report(compare_runs(baseline, candidate), "md"))
