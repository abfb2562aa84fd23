"""``evaltune run SUITE --model M [--model M2 ...]``: generate, score, store, print a summary (or a sweep's matrix)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from evaltune.commands.exchange_cmd import check_log_to, log_to_tracker
from evaltune.errors import UserError, scorers_option, user_errors
from evaltune.harness.backends.registry import DEFAULT_CONCURRENCY, LoadOptions
from evaltune.progress import Progress, silenced
from evaltune.summary import format_summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from evaltune.evaluate import Evaluation, SweepEvaluation


@click.command()
@click.argument("suite")
@click.option("--model", "-m", "models", multiple=True, metavar="MODEL",
              help="'default', a local folder, a hub id, openai:URL, PREFIX:TARGET of an installed backend, or a "
                   "stored model id (model:N). Repeat it to run every prompt variant on every model (a sweep). "
                   "[default: default]")
@click.option("--adapter", help="A PEFT adapter folder to apply on top of --model (one --model only).")
@click.option("--model-name", "model_names", multiple=True, metavar="NAME",
              help="The model name an openai: endpoint serves. With several --model, one per endpoint in the order "
                   "of their --model, or one that every endpoint serves.")
@click.option("--scorers", help="Comma-separated scorer names or ids such as 'similar(threshold=0.75)' "
                                "(default: the suite's).")
@click.option("--seed", type=int, help="Sampling seed (default 0); no effect under greedy decoding (temperature 0).")
@click.option("--temperature", type=click.FloatRange(min=0), help="Instead of the suite's (0 = greedy).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Instead of the suite's, in (0, 1].")
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Instead of the suite's.")
@click.option("--samples", type=click.IntRange(min=1), help="Outputs per item, instead of the suite's.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the suite's batch size.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option("--judge", metavar="MODEL",
              help="The judge model for llm-rubric and judge scorers (a local folder or openai:URL), for suites "
                   "that name no judge: of their own (default: EVALTUNE_JUDGE_MODEL).")
@click.option("--judge-model-name", metavar="NAME", help="The model name the --judge endpoint serves.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N, or auto: every GPU of this machine (accelerate's device_map), else the CPU.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float16", "float32"]), default="auto",
              show_default=True, help="Weights' dtype; auto: bfloat16 on a GPU that has it, else float32.")
@click.option("--concurrency", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Requests in flight to openai: endpoints, shared among them.")
@click.option("--tensor-parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs one copy of the model is split over (vllm:).")
@click.option("--data-parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Copies of the model, each on its own GPUs (vllm:). For the hf backend use accelerate launch.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (a sweep: its matrix) as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every metric (each bias attribute), not only the worst.")
@click.option("--baseline", type=int, help="After the run, compare it with this run id (a Markdown report).")
@click.option("--gate", "gate_file", type=click.Path(dir_okay=False),
              help="With --baseline: check this gate file; exit 1 when a gate fails.")
@click.option("--log-to", type=click.Choice(["mlflow", "tensorboard", "wandb"]),
              help="Also log the run (each cell of a sweep) to this experiment tracker: settings, metrics and CIs.")
def run(suite: str, models: tuple[str, ...], adapter: str | None, model_names: tuple[str, ...],
        scorers: str | None, seed: int | None, temperature: float | None, top_p: float | None,
        max_new_tokens: int | None, samples: int | None, batch_size: int | None, limit: int | None,
        judge: str | None, judge_model_name: str | None, device: str, dtype: str, concurrency: int,
        tensor_parallel: int, data_parallel: int, as_json: bool, show_all: bool, baseline: int | None,
        gate_file: str | None, log_to: str | None) -> None:
    """Run SUITE (a built-in name such as 'regression', or a suite file) against a model.

    Prints a table of metric, value, 95% CI and n. A run interrupted part-way is resumed
    by running the same command again; one that already completed is shown again, not repeated.
    Settings, seed and --limit belong to the run: runs of one suite with different ones compare item by item.
    With --baseline (and --gate) the new run is compared with (and gated against) a stored run:
    exit 1 when a gate fails, 2 on a bad gate file.

    Several --model, or a suite with prompt variants (prompts:), make a sweep: every variant on every model, each
    an ordinary run, recorded together. It prints the sweep's id and its matrix (each cell against the first;
    'evaltune sweeps show N --baseline CELL' picks another). The same command resumes an interrupted sweep.

    Under 'accelerate launch' or 'torchrun' every process shares one run (each cell of a sweep): each generates a
    disjoint shard of the outputs, the main process scores and prints the summary, the others one line each.
    """
    if gate_file and baseline is None:
        raise UserError("--gate needs --baseline RUN_ID (the run to compare against)")
    if gate_file:
        from evaltune.commands.report_cmd import report_errors
        from evaltune.reports.gates import load_gates

        with report_errors():  # a bad gate file should fail before the run, not after it
            load_gates(gate_file)
    check_log_to(log_to)  # a tracker that cannot log is refused before the run, not after it
    from evaltune.evaluate import EvaluateRequest, Evaluation, evaluate_models, pair_models
    from evaltune.harness.backends.devices import check_placement
    from evaltune.harness.distributed import current_launch
    from evaltune.harness.judges.config import judge_from_options
    from evaltune.harness.suite import SettingsOverrides

    scorer_names = scorers_option(scorers) if scorers else None  # canonical ids: similar(threshold=0.75)
    overrides = SettingsOverrides(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                  samples=samples)
    with user_errors():
        choices = pair_models(models, model_names, adapter)
        judge_spec = judge_from_options(judge, judge_model_name)
        load = LoadOptions(dtype=dtype, device=device, concurrency=concurrency, tensor_parallel=tensor_parallel,
                           data_parallel=data_parallel)
        check_placement([choice.spec for choice in choices], load)  # a missing GPU fails before anything loads
        launch = current_launch()  # accelerate launch / torchrun: this process's place (one process otherwise)
    request = EvaluateRequest(
        suite=suite, model=choices[0].spec, adapter=choices[0].adapter, model_name=choices[0].model_name,
        seed=seed, scorers=scorer_names, batch_size=batch_size, limit=limit, settings=overrides, judge=judge_spec,
        load=load,
    )
    # A bar on a terminal only, and none while the summary is JSON (scoring's bar is silenced too).
    one_run_only = None if baseline is None else (
        "--baseline compares one run with a stored run; a sweep compares its cells: leave --baseline out and "
        "use 'evaltune sweeps show N --baseline CELL' after it")
    # Under a launch only the main process talks; its bar counts its own shard of the outputs.
    with user_errors(), silenced(as_json or not launch.is_main), Progress("generating", unit="output") as progress, \
            _CellBars() as cell_bars:
        evaluation = evaluate_models(request, choices, status=_status(launch.is_main), on_progress=progress.update_to,
                                     on_cell_progress=cell_bars.update_to, one_run_only=one_run_only)
    if not launch.is_main:
        click.echo(_shard_line(launch.rank, evaluation), err=True)
        return
    log_to_tracker(log_to, evaluation)
    if not isinstance(evaluation, Evaluation):
        _print_sweep(evaluation, as_json)
        return
    click.echo(format_summary(evaluation, as_json=as_json, show_all=show_all))
    if baseline is not None:
        _compare(baseline, evaluation.outcome.run_id, gate_file)


def _status(shown: bool) -> Callable[[str], None]:
    """Where the run's status lines go: standard error, or nowhere (a launch's processes other than the main)."""
    if shown:
        return lambda line: click.echo(line, err=True)
    return lambda _line: None


def _shard_line(rank: int, evaluation: Evaluation | SweepEvaluation) -> str:
    """The one line a launch's process other than the main prints: the outputs it added, and to which run."""
    from evaltune.evaluate import Evaluation

    if isinstance(evaluation, Evaluation):
        outcomes, where = [evaluation.outcome], f"run {evaluation.outcome.run_id}"
    else:
        outcomes, where = [cell.outcome for cell in evaluation.outcome.cells], f"sweep {evaluation.outcome.sweep_id}"
    generated = sum(o.generated for o in outcomes)
    copied = sum(o.from_cache for o in outcomes)
    return f"rank {rank}: {generated + copied} outputs ({generated} generated, {copied} from cache) into {where}"


class _CellBars:
    """One progress bar per sweep cell, made when the cell starts and closed when it ends."""

    def __init__(self) -> None:
        self.bars: dict[str, Progress] = {}

    def update_to(self, label: str, done: int, total: int) -> None:
        if label not in self.bars:
            for bar in self.bars.values():
                bar.close()
            self.bars[label] = Progress(label, unit="output")
        self.bars[label].update_to(done, total)

    def __enter__(self) -> _CellBars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


def _print_sweep(evaluation: SweepEvaluation, as_json: bool) -> None:
    """The sweep's matrix (``reports.sweep_matrix``), each cell against the first."""
    from evaltune.commands.report_cmd import report_errors
    from evaltune.reports.sweep_matrix import build_matrix, matrix_record, matrix_text
    from evaltune.store import store_session

    sweep_id = evaluation.outcome.sweep_id
    with report_errors(), store_session() as session:
        matrix = build_matrix(session, sweep_id)
    if as_json:
        click.echo(json.dumps(matrix_record(matrix), indent=2, allow_nan=False))
        return
    click.echo(matrix_text(matrix), nl=False)
    click.echo(f"\nsweep {sweep_id}: 'evaltune sweeps show {sweep_id} --baseline CELL' compares with another cell; "
               f"'evaltune report --sweep {sweep_id} --format html -o matrix.html' writes the report")


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
