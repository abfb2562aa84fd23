"""``evaltune data build`` (ratings -> a stored training dataset), ``data export`` and ``data import``."""

from __future__ import annotations

from pathlib import Path

import click

from evaltune.errors import UserError, user_errors

STRATEGY_HELP = ("pairwise: A/B votes -> preference pairs (ties, both-bad dropped); likert-gap: best vs worst "
                 "output of an item; correction: correction > original; kto: thumbs/Likert -> labelled rows; "
                 "sft: corrections -> completions.")


@click.group()
def data() -> None:
    """Training data from ratings: build a dataset by a named strategy, export it for TRL."""


@data.command("build")
@click.option("--campaign", "campaign_id", required=True, type=int, help="The campaign whose ratings to use.")
@click.option("--strategy", required=True, type=click.Choice(["pairwise", "likert-gap", "correction", "kto", "sft"]),
              help=STRATEGY_HELP)
@click.option("--min-gap", default=2.0, show_default=True, type=float, help="likert-gap: least score gap.")
@click.option("--min-agreement", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Drop items whose raters agree less than this (share of the majority vote).")
@click.option("--weight-by-agreement", is_flag=True, help="Keep low-agreement items, weighted by agreement.")
@click.option("--holdout", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of items held out (by item, reproducible with --seed).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--name", default="", help="A name for the dataset.")
def build(campaign_id: int, strategy: str, min_gap: float, min_agreement: float, weight_by_agreement: bool,
          holdout: float, seed: int, name: str) -> None:
    """Build and store a dataset from a campaign's ratings; prints its id and what was kept and dropped."""
    from evaltune.db.engine import open_store
    from evaltune.retune.datasets import build_dataset
    from evaltune.retune.strategies import StrategyParams

    try:
        params = StrategyParams(min_gap=min_gap, min_agreement=min_agreement, holdout=holdout, seed=seed,
                                gating="weight" if weight_by_agreement else "drop")
    except ValueError as error:
        raise UserError(f"{error}; see 'evaltune data build --help'") from error
    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            dataset = build_dataset(session, campaign_id, strategy, params, name)
            dataset_id, counts = dataset.id, dict(dataset.counts)
    except LookupError as error:
        raise UserError(str(error.args[0])) from error
    finally:
        store.close()
    click.echo(f"dataset {dataset_id} ({strategy}): {counts.get('train', 0)} train rows, "
               f"{counts.get('holdout', 0)} held out, from {counts.get('ratings', 0)} ratings")
    for key, value in sorted(counts.items()):
        if key not in ("train", "holdout", "ratings"):
            click.echo(f"  {key}: {value}")


@data.command("export")
@click.argument("dataset_id", type=int)
@click.option("--format", "fmt", default="jsonl", show_default=True, type=click.Choice(["jsonl", "parquet"]))
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "holdout", "all"]))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
def export(dataset_id: int, fmt: str, split: str, output: Path) -> None:
    """Write a dataset's rows in TRL's columns (prompt/chosen/rejected, prompt/completion/label, ...)."""
    from evaltune.db.engine import open_store
    from evaltune.retune.datasets import dataset_records, export_records

    with user_errors():
        store = open_store()
    try:
        with store.sessions() as session:
            records = dataset_records(session, dataset_id, split)
    except LookupError as error:
        raise UserError(str(error.args[0])) from error
    finally:
        store.close()
    try:
        export_records(records, output, fmt)
    except OSError as error:
        raise UserError(f"{output}: cannot write the export ({error.strerror}); choose another -o path") from error
    click.echo(f"wrote {len(records)} rows to {output}")


@data.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(["dpo", "kto", "sft"]),
              help="What the rows are for (default: told by the first row's columns).")
@click.option("--name", default="", help="A name for the dataset (default: from the file name).")
def import_file(file: Path, method: str | None, name: str) -> None:
    """Store a JSON Lines file in TRL's columns (an export, or rows made elsewhere) as a dataset to retune on.
    Every row is checked first: a bad row stores nothing."""
    from evaltune.db.engine import open_store
    from evaltune.retune.datasets import DatasetFileError, import_dataset

    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            dataset = import_dataset(session, file, method, name)
            dataset_id, rows, method = dataset.id, dataset.counts["rows"], dataset.params["method"]
    except DatasetFileError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    click.echo(f"dataset {dataset_id} ({method}): {rows} rows from {file}")
