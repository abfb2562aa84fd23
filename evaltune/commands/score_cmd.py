"""``evaltune score RUN_ID`` (re-score a stored run) and ``evaltune score --input FILE`` (score outputs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from evaltune.errors import UserError, check_scorer_names, user_errors
from evaltune.store import store_session

if TYPE_CHECKING:
    from evaltune.harness.judges.config import JudgeSpec


@click.command()
@click.argument("run_id", type=int, required=False)
@click.option("--scorers", required=True, help="Comma-separated scorer names or ids such as "
                                                 "'similar(threshold=0.75)'; see 'evaltune scorers list'.")
@click.option("--input", "input_file", type=click.Path(dir_okay=False),
              help="A JSONL file of outputs produced elsewhere (instead of RUN_ID).")
@click.option("--output", "output_file", type=click.Path(dir_okay=False),
              help="With --input: where to write the scored JSONL (default: standard output).")
@click.option("--judge", metavar="MODEL", help="With RUN_ID: the judge model for llm-rubric and judge scorers (a local "
              "folder or openai:URL; default: EVALTUNE_JUDGE_MODEL).")
@click.option("--judge-model-name", metavar="NAME", help="The model name the --judge endpoint serves.")
@click.option("--device", metavar="DEVICE", help="Where the scoring models (MiniLM, BERTScore, an NLI model) and a "
              "local judge run: cpu, cuda, cuda:N or auto (default: EVALTUNE_SCORING_DEVICE, else cpu).")
def score(run_id: int | None, scorers: str, input_file: str | None, output_file: str | None, judge: str | None,
          judge_model_name: str | None, device: str | None) -> None:
    """Score a stored run again without regenerating, or score outputs from a JSONL file.

    Each --input line is a JSON object with "output" and any of "prompt", "reference",
    "references", "context", "samples", "expect_abstention", "metadata"; each output line adds one
    field per scorer (null where the scorer does not apply).
    """
    from evaltune.metrics.scorer_params import split_ids

    names = split_ids(scorers)  # commas inside an id such as similar(threshold=0.75, ...) do not split it
    if (run_id is None) == (input_file is None):
        raise UserError("give either RUN_ID or --input FILE (not both)")
    if input_file is not None and (judge or judge_model_name):
        raise UserError("--judge scores a stored run (RUN_ID); outputs from --input are scored without a judge")
    if not names:
        raise UserError("--scorers: name at least one scorer; 'evaltune scorers list' shows them all")
    names = list(check_scorer_names(names))  # canonical ids
    from evaltune import settings

    settings.apply_threads()  # scorers that load a model (embeddings, BERTScore) run on this many threads
    if device is not None:
        _use_device(device)
    with user_errors():
        settings.scoring_device()  # a misspelt EVALTUNE_SCORING_DEVICE fails before anything is scored
    if input_file is not None:
        from evaltune.score_file import score_file

        with user_errors():
            count, metrics = score_file(input_file, output_file, names)
        click.echo(f"scored {count} outputs -> {output_file or 'stdout'}", err=True)
    else:
        assert run_id is not None
        from evaltune.harness.judges.config import judge_from_options

        with user_errors():
            judge_spec = _placed(judge_from_options(judge, judge_model_name), device)
        metrics = _rescore_run(run_id, names, judge_spec)
    from evaltune.summary import metrics_table

    # With the scored lines on stdout, the table goes to stderr so the JSONL stays clean.
    click.echo(metrics_table(metrics), err=input_file is not None and not output_file)


def _use_device(device: str) -> None:
    """Check ``--device`` on this machine (a GPU asked for where there is none fails here, before any scoring) and
    make it the scoring models' device."""
    from evaltune import settings
    from evaltune.harness.backends.devices import checked_scoring_device

    with user_errors():
        checked_scoring_device(device)
        settings.use_scoring_device(device)


def _placed(judge: JudgeSpec | None, device: str | None) -> JudgeSpec | None:
    """The judge that re-scores a run (``--judge``, else ``EVALTUNE_JUDGE_MODEL``), a local one on ``--device``."""
    from dataclasses import replace

    from evaltune.harness.judges.config import judge_from_settings

    judge = judge if judge is not None else judge_from_settings()
    if judge is None or device is None or judge.is_endpoint:
        return judge
    return replace(judge, device=device)


def _rescore_run(run_id: int, names: list[str], judge: JudgeSpec | None) -> list[dict[str, Any]]:
    from evaltune.db.evaluation import Run
    from evaltune.harness.scoring import score_run

    with store_session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise UserError(f"no run {run_id} in the store; see 'evaltune runs list'")
        with user_errors():  # a stored assertion whose scorer plugin is gone names the item and the field
            metrics = score_run(session, run_id, names, judge)
        run.scorers = sorted(set(run.scorers) | set(names))
    return [m.__dict__ for m in metrics]
