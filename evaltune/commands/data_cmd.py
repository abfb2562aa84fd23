"""``evaltune data build`` (ratings -> a stored training dataset), ``data export`` and ``data import``.

The strategies and their options come from the strategy registry (``evaltune.retune.strategies``): a strategy
or parameter added there shows up here with its help, default and allowed values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evaltune.errors import UserError, user_errors
from evaltune.retune.strategies import SHARED_PARAMETERS, Parameter, parameters, strategies


def _strategy_help() -> str:
    return " ".join(f"{name} ({s.method}): {s.help}" for name, s in strategies().items())


def _option(parameter: Parameter) -> Callable[[Any], Any]:
    """One ``data build`` option for a strategy parameter: ``min_gap`` becomes ``--min-gap``."""
    users = [name for name, s in strategies().items() if parameter.name in s.parameters]
    help_text = parameter.help + ("" if parameter.name in SHARED_PARAMETERS else f" ({', '.join(users)})")
    if parameter.flag:  # a switch that picks the second choice, e.g. --weight-by-agreement: gating = weight
        switched = f"{parameter.name} = '{parameter.choices[1]}' (default '{parameter.default}'). "
        return click.option(f"--{parameter.flag}", parameter.name, flag_value=parameter.choices[1],
                            default=parameter.default, help=switched + help_text)
    settings: dict[str, Any] = {"default": parameter.default, "show_default": parameter.default is not None,
                                "help": help_text}
    if parameter.choices:
        settings["type"] = click.Choice(parameter.choices)
    elif parameter.kind in (int, float) and (parameter.low is not None or parameter.high is not None):
        ends = {"min_open": parameter.low_open, "max_open": parameter.high_open}
        if parameter.kind is int:
            low, high = (None if end is None else int(end) for end in (parameter.low, parameter.high))
            settings["type"] = click.IntRange(low, high, **ends)
        else:
            settings["type"] = click.FloatRange(parameter.low, parameter.high, **ends)
    else:
        settings["type"] = parameter.kind
    return click.option(f"--{parameter.name.replace('_', '-')}", parameter.name, **settings)


def _strategy_options(command: Callable[..., None]) -> Callable[..., None]:
    for parameter in reversed(parameters()):
        command = _option(parameter)(command)
    return command


@click.group()
def data() -> None:
    """Training data from ratings: build a dataset by a named strategy, list them, export them for TRL."""


@data.command("list")
def list_datasets() -> None:
    """The stored datasets, newest first: strategy, method, rows per split, and whether a retune can use them."""
    from evaltune.retune.datasets import dataset_summaries
    from evaltune.retune.jobs import dataset_problem
    from evaltune.store import store_session

    with store_session() as session:
        found = dataset_summaries(session)
    if not found:
        click.echo("no datasets yet: build one with 'evaltune data build --campaign ID --strategy NAME'")
    for dataset in found:
        source = f"campaign {dataset.campaign_id}" if dataset.campaign_id else "imported"
        click.echo(f"{dataset.id:>4}  {dataset.name}  {dataset.strategy} -> {dataset.method}, {source}: "
                   f"{dataset.train_rows} train, {dataset.holdout_rows} held out "
                   f"({dataset.created_at:%Y-%m-%d %H:%M})")
        problem = dataset_problem(dataset)
        if problem:
            click.echo(f"      ! {problem}")


@data.command("build")
@click.option("--campaign", "campaign_id", required=True, type=int, help="The campaign whose ratings to use.")
@click.option("--strategy", required=True, type=click.Choice(list(strategies())), help=_strategy_help())
@_strategy_options
@click.option("--name", default="", help="A name for the dataset.")
@click.option("--allow-empty", is_flag=True, help="Store the dataset even when it has no training rows.")
def build(campaign_id: int, strategy: str, name: str, allow_empty: bool, **knobs: Any) -> None:
    """Build and store a dataset from a campaign's ratings; prints its id and what was kept and dropped
    (adjudicated items follow the admin's decision, counted as adjudicated_items). Ratings that give no
    training row are refused, saying why and which strategies would make rows, and nothing is stored."""
    from evaltune.db.engine import open_store
    from evaltune.retune.datasets import EmptyDatasetError, build_dataset
    from evaltune.retune.jobs import MIN_TRAIN_ROWS
    from evaltune.retune.strategies import StrategyParams

    try:
        params = StrategyParams(**knobs)
    except ValueError as error:
        raise UserError(f"{error}; see 'evaltune data build --help'") from error
    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            dataset = build_dataset(session, campaign_id, strategy, params, name, allow_empty=allow_empty)
            dataset_id, counts = dataset.id, dict(dataset.counts)
    except LookupError as error:
        raise UserError(str(error.args[0])) from error
    except EmptyDatasetError as error:
        raise UserError(f"{error}; nothing was stored (--allow-empty stores it anyway)") from error
    finally:
        store.close()
    click.echo(f"dataset {dataset_id} ({strategy}): {counts.get('train', 0)} train rows, "
               f"{counts.get('holdout', 0)} held out, from {counts.get('ratings', 0)} ratings")
    for key, value in sorted(counts.items()):
        if key not in ("train", "holdout", "ratings"):
            click.echo(f"  {key}: {value}")
    if counts.get("train", 0) < MIN_TRAIN_ROWS:
        click.echo(f"note: a retune needs {MIN_TRAIN_ROWS} training rows; 'evaltune retune --force' trains on fewer")


@data.command("export")
@click.argument("dataset_id", type=int)
@click.option("--format", "fmt", default="jsonl", show_default=True, type=click.Choice(["jsonl", "parquet"]))
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "holdout", "all"]))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
def export(dataset_id: int, fmt: str, split: str, output: Path) -> None:
    """Write a dataset's rows in TRL's columns (prompt/chosen/rejected, prompt/completion/label, ...), and its
    schema version, method and columns beside it (pairs.jsonl -> pairs.meta.yaml)."""
    from evaltune.db.engine import open_store
    from evaltune.db.training import PreferenceDataset
    from evaltune.retune.datasets import dataset_method, dataset_records, export_records, metadata_path

    with user_errors():
        store = open_store()
    try:
        with store.sessions() as session:
            records = dataset_records(session, dataset_id, split)
            method = dataset_method(session.get_one(PreferenceDataset, dataset_id))
    except LookupError as error:
        raise UserError(str(error.args[0])) from error
    finally:
        store.close()
    try:
        export_records(records, output, fmt, method)
    except OSError as error:
        raise UserError(f"{output}: cannot write the export ({error.strerror}); choose another -o path") from error
    click.echo(f"wrote {len(records)} rows to {output} (metadata: {metadata_path(output)})")


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
