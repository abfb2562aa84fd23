"""``evaltune run SUITE --model M``: generate, score, store, print a summary."""

from __future__ import annotations

import sys

import click

from evaltune.errors import UserError, scorers_option, user_errors
from evaltune.progress import Progress, silenced
from evaltune.summary import format_summary


@click.command()
@click.argument("suite")
@click.option("--model", "-m", default="default", show_default=True,
              help="'default', a local folder, a hub id, openai:URL, PREFIX:TARGET of an installed backend, "
                   "or a stored model id (model:N).")
@click.option("--adapter", help="A PEFT adapter folder to apply on top of --model.")
@click.option("--model-name", help="The model name an openai: endpoint serves.")
@click.option("--scorers", help="Comma-separated scorer names or ids such as 'similar(threshold=0.75)' "
                                "(default: the suite's).")
@click.option("--seed", type=int, help="Sampling seed (default 0); no effect under greedy decoding (temperature 0).")
@click.option("--temperature", type=click.FloatRange(min=0), help="Instead of the suite's (0 = greedy).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Instead of the suite's, in (0, 1].")
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Instead of the suite's.")
@click.option("--samples", type=click.IntRange(min=1), help="Outputs per item, instead of the suite's.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the suite's batch size.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every metric (each bias attribute), not only the worst.")
@click.option("--baseline", type=int, help="After the run, compare it with this run id (a Markdown report).")
@click.option("--gate", "gate_file", type=click.Path(dir_okay=False),
              help="With --baseline: check this gate file; exit 1 when a gate fails.")
def run(suite: str, model: str, adapter: str | None, model_name: str | None, scorers: str | None,
        seed: int | None, temperature: float | None, top_p: float | None, max_new_tokens: int | None,
        samples: int | None, batch_size: int | None, limit: int | None, as_json: bool, show_all: bool,
        baseline: int | None, gate_file: str | None) -> None:
    """Run SUITE (a built-in name such as 'regression', or a suite file) against a model.

    Prints a table of metric, value, 95% CI and n. A run interrupted part-way is resumed
    by running the same command again; one that already completed is shown again, not repeated.
    Settings, seed and --limit belong to the run: runs of one suite with different ones compare item by item.
    With --baseline (and --gate) the new run is compared with (and gated against) a stored run:
    exit 1 when a gate fails, 2 on a bad gate file.
    """
    if gate_file and baseline is None:
        raise UserError("--gate needs --baseline RUN_ID (the run to compare against)")
    if gate_file:
        from evaltune.commands.report_cmd import report_errors
        from evaltune.reports.gates import load_gates

        with report_errors():  # a bad gate file should fail before the run, not after it
            load_gates(gate_file)
    from evaltune.evaluate import EvaluateRequest, evaluate
    from evaltune.harness.suite import SettingsOverrides

    scorer_names = scorers_option(scorers) if scorers else None  # canonical ids: similar(threshold=0.75)
    overrides = SettingsOverrides(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                  samples=samples)
    request = EvaluateRequest(
        suite=suite, model=model, adapter=adapter, model_name=model_name, seed=seed,
        scorers=scorer_names, batch_size=batch_size, limit=limit, settings=overrides,
    )
    # A bar on a terminal only, and none while the summary is JSON (scoring's bar is silenced too).
    with user_errors(), silenced(as_json), Progress("generating", unit="output") as progress:
        evaluation = evaluate(request, on_progress=progress.update_to)
    click.echo(format_summary(evaluation, as_json=as_json, show_all=show_all))
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
