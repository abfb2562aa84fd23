"""``evaltune retune``: queue a LoRA DPO / KTO / SFT job on a stored dataset (and optionally run or await it)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from evaltune.commands.exchange_cmd import check_log_to
from evaltune.errors import UserError, user_errors
from evaltune.retune.config import METHODS, OptionField, RetuneConfig, config_class, config_from_options, option_fields
from evaltune.retune.jobs import MIN_TRAIN_ROWS, Base, JobError

if TYPE_CHECKING:
    from evaltune.db.engine import Store

F = TypeVar("F", bound=Callable[..., Any])


def _click_option(option: OptionField) -> Callable[[F], F]:
    """One config field as a click option: its flag (and aliases), type, default and help."""
    help_text = option.help_for(METHODS)
    if option.kind is bool:
        names = f"{option.flag}/--no-{option.flag[2:]}"
        return click.option(names, option.name, default=option.default, show_default=True, help=help_text)
    if option.kind is tuple:
        return click.option(option.flag, *option.aliases, option.name, multiple=True, default=option.default,
                            help=help_text + " Repeat the option for several.")
    return click.option(option.flag, *option.aliases, option.name, type=option.kind, default=option.default,
                        show_default=True, help=help_text)


def config_options(command: F) -> F:
    """Add an option for every field of every method's config (``retune.config``), defaults and help included."""
    for option in reversed(option_fields()):
        command = _click_option(option)(command)
    return command


@click.command()
@click.option("--model", "model_spec", default="default", show_default=True,
              help="Base model: 'default', a folder, a hub id, or a stored version model:ID.")
@click.option("--dataset", "dataset_id", required=True, type=int, help="A dataset from 'evaltune data build'.")
@click.option("--method", type=click.Choice(METHODS),
              help="Training method: the one the dataset's rows were built for (the default; another is refused).")
@click.option("--eval-after", "eval_suites", multiple=True,
              help="Suite to re-run on the adapter (repeatable): a built-in name or a suite file, checked now.")
@click.option("--force", is_flag=True,
              help=f"Train on a dataset with fewer than {MIN_TRAIN_ROWS} training rows, the minimum: below one "
                   "batch at the default batch size the adapter learns those answers by heart.")
@click.option("--wait", is_flag=True, help="Wait for a worker to finish the job, printing its log.")
@click.option("--here", is_flag=True, help="Run the job in this process instead of waiting for a worker.")
@config_options
@click.pass_context
def retune(ctx: click.Context, model_spec: str, dataset_id: int, method: str | None, eval_suites: tuple[str, ...],
           force: bool, wait: bool, here: bool, **settings_given: Any) -> None:
    """Queue a retune job; prints its id. A worker ('evaltune worker') registers the base model, trains, registers
    the adapter as a model version and re-runs the --eval-after suites on it. Rows built with
    --weight-by-agreement are drawn in proportion to their weight.

    A job that cannot succeed is refused here, with the reason, and nothing is stored: a dataset with no
    training rows, fewer than the minimum (see --force) or rows for another method, a suite that does not
    load, a base model that cannot be trained. Queueing loads no model."""
    from evaltune import settings
    from evaltune.db.engine import open_store
    from evaltune.retune import jobs

    with user_errors():
        store = open_store()
    try:
        config = _config(ctx, method or _dataset_method(store, dataset_id), settings_given)
        check_log_to(config.log_to or None)  # the tracker's package must be installed where the job is queued
        base = _base(store, model_spec)
        try:
            with store.session_scope() as session:
                job = jobs.submit(session, dataset_id=dataset_id, base=base, config=config,
                                  eval_suites=eval_suites, force=force)
                job_id, base_name = job.id, jobs.base_label(job)
        except JobError as error:
            raise UserError(f"{error.option}: {error}" if error.option else str(error)) from error
        click.echo(f"job {job_id} queued: {config.method} on dataset {dataset_id}, base {base_name}")
        for warning in _data_warnings(store, dataset_id, config.method):
            click.echo(f"warning: {warning}", err=True)  # said now, not only in the job log
        if here:
            from evaltune.retune.reevaluate import EvalSettings
            from evaltune.retune.worker import WorkerOptions, run_once

            options = WorkerOptions(home=settings.home(), eval=EvalSettings(
                seed=config.seed, threads=settings.threads(), code_version=settings.code_version()))
            run_once(store, options, log=click.echo, job_id=job_id)
        if wait or here:
            _follow(store, job_id)
    finally:
        store.close()


def _data_warnings(store: Store, dataset_id: int, method: str) -> list[str]:
    """What the worker will warn about the dataset's training rows (too few, near-identical pairs)."""
    from evaltune.retune.datasets import dataset_records
    from evaltune.retune.train import data_warnings

    with store.sessions() as session:
        return data_warnings(dataset_records(session, dataset_id, "train"), method)


def _config(ctx: click.Context, method: str, values: dict[str, Any]) -> RetuneConfig:
    """The method's config from the options; an option given for another method's field is an error."""
    own = {option.name for option in option_fields([config_class(method)])}
    for option in option_fields():
        if option.name not in own and ctx.get_parameter_source(option.name) is not ParameterSource.DEFAULT:
            raise UserError(f"{option.flag} is a {'/'.join(option.methods)} setting, not one for {method}; "
                            f"drop it or choose --method {option.methods[0]}")
    try:
        return config_from_options(method, values)
    except ValueError as error:
        raise UserError(f"{error}; see 'evaltune retune --help'") from error


def _dataset_method(store: Store, dataset_id: int) -> str:
    from evaltune.db.training import PreferenceDataset
    from evaltune.retune.datasets import dataset_method

    with store.sessions() as session:
        dataset = session.get(PreferenceDataset, dataset_id)
        if dataset is None:
            raise UserError(f"no dataset {dataset_id}; build one with 'evaltune data build' or 'evaltune data import'")
        return dataset_method(dataset)


def _base(store: Store, model_spec: str) -> Base:
    """The stored model version ``model_spec`` names, or the model it resolves to (folders and names are checked;
    nothing is loaded: the worker registers it)."""
    from evaltune import settings
    from evaltune.harness.backends.registry import DEFAULT_BACKEND, split_spec
    from evaltune.harness.model_resolution import resolve_model, stored_model_id

    base_id = stored_model_id(model_spec)
    if base_id is not None:
        return Base(version_id=base_id)
    with user_errors():
        backend = split_spec(model_spec.strip())[0]
        if backend != DEFAULT_BACKEND:  # an endpoint serves a model; LoRA needs its weights here
            raise UserError(f"--model '{model_spec}': the {backend} backend serves a model whose weights cannot be "
                            "trained here; pass 'default', a model folder, a hub id or model:ID")
        return Base(model=resolve_model(model_spec, home=settings.home(), threads=settings.threads()))


def _follow(store: Store, job_id: int, poll_s: float = 2.0) -> None:
    """Print the job's log as it grows, then its result; exit 1 unless it succeeded."""
    from evaltune.db.training import RetuneJob
    from evaltune.retune.jobs import FINISHED
    from evaltune.retune.worker import outcome_lines

    shown = 0
    while True:
        with store.sessions() as session:
            job = session.get_one(RetuneJob, job_id)
            status, log = job.status, job.log
        click.echo(log[shown:], nl=False)
        shown = len(log)
        if status in FINISHED:  # degraded included (retune.collapse)
            break
        time.sleep(poll_s)
    with store.sessions() as session:
        click.echo("\n".join(outcome_lines(session, job_id)))
    if status != "succeeded":
        sys.exit(1)
