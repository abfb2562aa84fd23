"""``evaltune retune``: queue a LoRA DPO / KTO / SFT job on a stored dataset (and optionally run or await it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from evaltune.errors import UserError, user_errors
from evaltune.retune.config import METHODS, OptionField, RetuneConfig, config_class, config_from_options, option_fields

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
              help="Training method (default: the one the dataset's strategy was built for).")
@click.option("--eval-after", "eval_suites", multiple=True, help="Suite to re-run on the adapter (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for a worker to finish the job, printing its log.")
@click.option("--here", is_flag=True, help="Run the job in this process instead of waiting for a worker.")
@config_options
@click.pass_context
def retune(ctx: click.Context, model_spec: str, dataset_id: int, method: str | None, eval_suites: tuple[str, ...],
           wait: bool, here: bool, **settings_given: Any) -> None:
    """Queue a retune job; prints its id. A worker ('evaltune worker') trains it, registers the adapter as a
    model version and re-runs the --eval-after suites on it. Rows built with --weight-by-agreement are drawn in
    proportion to their weight."""
    from evaltune import settings
    from evaltune.db.engine import open_store
    from evaltune.retune import jobs

    with user_errors():
        store = open_store()
    try:
        # Every argument is checked before the base model is loaded and registered: a typo stores nothing.
        config = _config(ctx, method or _dataset_method(store, dataset_id), settings_given)
        base_id = _base_model_id(store, model_spec)
        with store.session_scope() as session:
            job_id = jobs.enqueue(session, dataset_id=dataset_id, base_model_id=base_id, config=config,
                                  eval_suites=eval_suites).id
    except BaseException:
        store.close()
        raise
    click.echo(f"job {job_id} queued: {config.method} on dataset {dataset_id}, base model version {base_id}")
    if here:
        from evaltune.retune.reevaluate import EvalSettings
        from evaltune.retune.worker import WorkerOptions, run_once

        options = WorkerOptions(home=settings.home(), eval=EvalSettings(
            seed=config.seed, threads=settings.threads(), code_version=settings.code_version()))
        run_once(store, options, log=click.echo, job_id=job_id)
    if wait or here:
        _follow(store, job_id)
    store.close()


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


def _base_model_id(store: Store, model_spec: str) -> int:
    """The stored model version ``model_spec`` names, or the one it is registered as (loading it once)."""
    from evaltune import settings
    from evaltune.db.evaluation import ModelVersion
    from evaltune.harness.model_resolution import resolve_model, stored_model_id
    from evaltune.retune.register import register_base

    base_id = stored_model_id(model_spec)
    if base_id is not None:
        with store.sessions() as session:
            if session.get(ModelVersion, base_id) is None:
                raise UserError(f"--model: no model version {base_id} in the store; see 'evaltune models list'")
        return base_id
    with user_errors():
        model = resolve_model(model_spec, home=settings.home(), threads=settings.threads())
        return register_base(store.sessions, model)


def _follow(store: Store, job_id: int, poll_s: float = 2.0) -> None:
    from evaltune.db.training import RetuneJob

    shown = 0
    while True:
        with store.sessions() as session:
            job = session.get(RetuneJob, job_id)
            assert job is not None
            status, log, error, output = job.status, job.log, job.error, job.output_model_id
            runs = list(job.follow_up_run_ids)
        click.echo(log[shown:], nl=False)
        shown = len(log)
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(poll_s)
    click.echo(f"job {job_id} {status}" + (f": {error}" if error else ""))
    if output:
        click.echo(f"adapter: model:{output}; re-evaluation runs: {', '.join(map(str, runs)) or 'none'}")
    if status != "succeeded":
        raise click.exceptions.Exit(1)
