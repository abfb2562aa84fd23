"""The tools teams already use: ``evaltune campaigns export N --to labelstudio|argilla``, ``campaigns import N FILE
--from labelstudio|argilla``, ``ratings to-dataset`` and ``data to-dataset`` (Hugging Face ``datasets`` as Parquet,
or pushed to the hub), and the ``--log-to`` tracker helpers of ``evaltune run``.

The commands are attached to their groups in ``evaltune.cli``; the work is in ``evaltune.interchange``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evaltune.errors import UserError, user_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")

TOOLS = ("labelstudio", "argilla")


def _store() -> Any:
    from evaltune.db.engine import open_store

    with user_errors():
        return open_store()


@click.command("export")
@click.argument("campaign_id", type=int)
@click.option("--to", "tool", required=True, type=click.Choice(TOOLS), help="The annotation tool to write for.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The tasks (Label Studio) or records (Argilla) file, JSON; its config is written beside it.")
def export_campaign(campaign_id: int, tool: str, output: Path) -> None:
    """Write campaign CAMPAIGN_ID's items for Label Studio (tasks JSON and a labeling config, NAME.config.xml) or
    Argilla (records JSON and dataset settings, NAME.settings.json), asking the questions the rating page asks.
    Annotations made there come back with 'evaltune campaigns import'."""
    from evaltune.interchange import argilla, labelstudio
    from evaltune.interchange.campaign_io import ExchangeError, campaign_or_error, campaign_tasks

    store = _store()
    try:
        with store.sessions() as session:
            campaign = campaign_or_error(session, campaign_id)
            tasks = campaign_tasks(session, campaign_id)
            pairwise, guidelines = campaign.pairwise, campaign.guidelines
    except ExchangeError as error:
        raise UserError(str(error)) from None
    finally:
        store.close()
    writer = labelstudio.write_tasks if tool == "labelstudio" else argilla.write_records
    try:
        config = writer(tasks, pairwise, guidelines, output)
    except OSError as error:
        raise UserError(f"{output}: cannot write the export ({error.strerror}); choose another -o path") from None
    kind = "tasks" if tool == "labelstudio" else "records"
    click.echo(f"wrote {len(tasks)} {kind} of campaign {campaign_id} to {output} ({config.name} beside it)")


@click.command("import")
@click.argument("campaign_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "tool", required=True, type=click.Choice(TOOLS),
              help="labelstudio: Label Studio's JSON export; argilla: records as Record.to_dict() writes them.")
@click.option("--user-map", "user_map", multiple=True, metavar="ID=NAME",
              help="The tool's user id (or e-mail) -> our user name; repeat it. E-mails and names that are our user "
                   "names need none.")
def import_annotations(campaign_id: int, file: Path, tool: str, user_map: tuple[str, ...]) -> None:
    """Store the annotations in FILE (exported from Label Studio or Argilla, for tasks made by 'evaltune campaigns
    export') as ratings of campaign CAMPAIGN_ID. Every annotation is checked first: a task of another campaign, an
    unknown annotator, a span outside the output or an item already rated by that person stores nothing."""
    from evaltune.interchange import argilla, labelstudio
    from evaltune.interchange.campaign_io import ExchangeError, campaign_or_error, parse_user_map, store_answers

    store = _store()
    cancelled = 0
    try:
        with store.session_scope() as session:
            campaign_or_error(session, campaign_id)
            mapping = parse_user_map(user_map)
            if tool == "labelstudio":
                answers, cancelled = labelstudio.read_annotations(file, session, campaign_id, mapping)
            else:
                answers = argilla.read_records(file, session, campaign_id, mapping)
            rating_ids = store_answers(session, campaign_id, answers)
    except ExchangeError as error:
        raise UserError(str(error)) from None
    finally:
        store.close()
    skipped = f"; {cancelled} skipped (cancelled) annotations left out" if cancelled else ""
    click.echo(f"stored {len(rating_ids)} ratings in campaign {campaign_id} from {file}{skipped}")


def _hub_options(command: Any) -> Any:
    command = click.option("--public", is_flag=True, help="With --push-to-hub: a public dataset (default private).")(
        command)
    return click.option("--push-to-hub", "repo", metavar="OWNER/NAME",
                        help="Also push the dataset to the Hugging Face hub (needs EVALTUNE_ONLINE=1 and a token).")(
        command)


def _check_hub(repo: str | None) -> None:
    """--push-to-hub from a machine that cannot reach the hub is refused before anything is read or written."""
    from evaltune.interchange.hf_datasets import hub_problem

    problem = hub_problem() if repo else None
    if problem:
        raise UserError(f"--push-to-hub {repo}: {problem}; leave --push-to-hub out to write Parquet only")


def _write_dataset(splits: dict[str, list[dict[str, Any]]], output: Path, title: str, description: str,
                   repo: str | None, public: bool) -> None:
    from evaltune.interchange.campaign_io import ExchangeError
    from evaltune.interchange.hf_datasets import card, push, write_parquet

    try:
        written = write_parquet(splits, output, card(title, description, splits))
    except OSError as error:
        raise UserError(f"{output}: cannot write the dataset ({error.strerror}); choose another -o folder") from None
    for path in written:
        click.echo(f"wrote {path} ({len(splits[path.stem])} rows)")
    if repo:
        try:
            click.echo(f"pushed to {push(splits, repo, private=not public)}")
        except ExchangeError as error:
            raise UserError(str(error)) from None


def _read_splits(read: Callable[[Session], T]) -> T:
    """What ``read`` gets from the store, with an ``ExchangeError`` said as a user error (exit 2)."""
    from evaltune.interchange.campaign_io import ExchangeError

    store = _store()
    try:
        with store.sessions() as session:
            return read(session)
    except ExchangeError as error:
        raise UserError(str(error)) from None
    finally:
        store.close()


@click.command("to-dataset")
@click.option("--campaign", "campaign_id", required=True, type=int, help="The campaign whose ratings to write.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder: train.parquet and a README.md dataset card go there.")
@_hub_options
def ratings_to_dataset(campaign_id: int, output: Path, repo: str | None, public: bool) -> None:
    """Write a campaign's ratings as a Hugging Face dataset (Parquet; 'datasets.load_dataset(FOLDER)' reads it), one
    row per rating with the columns of 'evaltune ratings export'."""
    from evaltune.interchange.hf_datasets import ratings_splits

    _check_hub(repo)
    splits = _read_splits(lambda session: ratings_splits(session, campaign_id))
    _write_dataset(splits, output, f"Ratings of evaltune campaign {campaign_id}",
                   "One row per rating (skips included, marked `skipped`), with the prompt and the output(s) rated.",
                   repo, public)


@click.command("to-dataset")
@click.argument("dataset_id", type=int)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder: train.parquet, test.parquet (held-out rows) and a README.md dataset card go there.")
@_hub_options
def data_to_dataset(dataset_id: int, output: Path, repo: str | None, public: bool) -> None:
    """Write a stored training dataset as a Hugging Face dataset in TRL's columns (Parquet; held-out rows as the
    'test' split), ready for TRL's own scripts or 'datasets.load_dataset(FOLDER)'."""
    from evaltune.interchange.hf_datasets import training_splits

    _check_hub(repo)
    splits = _read_splits(lambda session: training_splits(session, dataset_id))
    _write_dataset(splits, output, f"evaltune training dataset {dataset_id}",
                   "Rows in TRL's columns (prompt/chosen/rejected, prompt/completion/label or prompt/completion), "
                   "built from human ratings by evaltune.", repo, public)


def check_log_to(log_to: str | None) -> None:
    """``--log-to``: refuse a tracker whose package is not installed, before any work is done."""
    from evaltune.tracking import TrackingError, check_tracker

    if log_to:
        try:
            check_tracker(log_to)
        except TrackingError as error:
            raise UserError(str(error)) from None


def log_to_tracker(log_to: str | None, evaluation: Any) -> None:
    """``--log-to``: log a finished run or sweep (``tracking.log_evaluation``), a line per tracker run on stderr."""
    from evaltune.tracking import TrackingError, log_evaluation

    if not log_to:
        return
    try:
        lines = log_evaluation(log_to, evaluation)
    except TrackingError as error:
        raise UserError(f"{error} (the run itself is stored)") from None
    for line in lines:
        click.echo(line, err=True)
