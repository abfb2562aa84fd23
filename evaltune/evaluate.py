"""``evaluate``: the one function behind ``evaltune run`` — resolve, load, run, score, store.

``evaluate_models`` is the whole of ``evaltune run``: one model on a suite asked one way is ``evaluate`` (one run);
several models, or a suite with prompt variants (``prompts:``), is a sweep (``harness.sweep.run_sweep``): every
variant on every model, each cell a run. This is where the parts are wired together; each stays usable on its own.
Under ``accelerate launch`` or ``torchrun``, ``evaluate_models`` in every process makes one data-parallel run
(``harness.distributed``): each process generates a shard, the main one scores and returns the run's outcome.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from evaltune import settings
from evaltune.db.engine import database_url, open_store, safe_url
from evaltune.db.evaluation import ModelVersion
from evaltune.errors import UserError
from evaltune.harness.backends.registry import DEFAULT_BACKEND, LoadOptions, split_spec
from evaltune.harness.distributed import SINGLE, Launch, current_launch
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ResolvedModel, resolve_model, stored_model_id
from evaltune.harness.prompt_variants import with_variant
from evaltune.harness.runner import RunOptions, RunOutcome, run_judge, run_suite
from evaltune.harness.suite import SettingsOverrides, SuiteSpec
from evaltune.harness.sweep import CellProgress, SweepModel, SweepOutcome, run_sweep
from evaltune.metrics.registry import get_scorer

if TYPE_CHECKING:
    from evaltune.harness.judges.config import JudgeSpec

Status = Callable[[str], None]


@dataclass(frozen=True)
class EvaluateRequest:
    suite: str
    model: str = "default"
    adapter: str | None = None
    model_name: str | None = None  # the served model's name, for openai: endpoints
    seed: int | None = None  # None: 0, chosen by nobody (so no warning when greedy decoding ignores it)
    scorers: tuple[str, ...] | None = None
    batch_size: int | None = None
    limit: int | None = None
    settings: SettingsOverrides = field(default_factory=SettingsOverrides)  # instead of the suite's
    store_url: str | None = None  # None: EVALTUNE_DB_URL, else the SQLite file under EVALTUNE_HOME
    judge: JudgeSpec | None = None  # --judge: for suites that name no judge of their own
    variant: str | None = None  # one prompt variant of a suite with prompts: (evaluate runs one; run_models all)
    load: LoadOptions = field(default_factory=LoadOptions)  # --device, --dtype, --concurrency, parallel settings


@dataclass(frozen=True)
class ModelChoice:
    """One ``--model`` of ``evaltune run``: the text as given (it labels the model's sweep cells), with the
    ``--model-name`` and ``--adapter`` that go with it."""

    spec: str
    model_name: str | None = None
    adapter: str | None = None


@dataclass(frozen=True)
class Evaluation:
    outcome: RunOutcome
    suite: SuiteSpec
    model: ResolvedModel
    load_s: float


@dataclass(frozen=True)
class SweepEvaluation:
    outcome: SweepOutcome
    suite: SuiteSpec


def pair_models(models: Sequence[str], model_names: Sequence[str], adapter: str | None = None
                ) -> tuple[ModelChoice, ...]:
    """The ``--model`` values with their ``--model-name`` and ``--adapter``.

    One model takes the one ``--model-name`` and the ``--adapter`` (as ``evaltune run`` always did). With several,
    the names go to the endpoints among them (every ``--model`` with a backend prefix, such as ``openai:``), in
    order: one name per endpoint, or a single name that every endpoint serves. ``--adapter`` is refused with
    several models: name a registered adapter as ``model:N`` instead. Raises ``UserError`` saying which to fix."""
    models = [model.strip() for model in models] or ["default"]
    if len(models) == 1:
        if len(model_names) > 1:
            raise UserError(f"{len(model_names)} --model-name values for one --model; give one")
        return (ModelChoice(models[0], model_names[0] if model_names else None, adapter),)
    twice = sorted({model for model in models if models.count(model) > 1})
    if twice:
        raise UserError(f"--model {twice[0]} is given twice; name each model once")
    if adapter is not None:
        raise UserError("--adapter applies to one --model; with several, name the adapter's model version as "
                        "model:N ('evaltune models list' shows them) or run it on its own")
    endpoints = [model for model in models if _is_endpoint(model)]
    names = _endpoint_names(endpoints, list(model_names))
    return tuple(ModelChoice(model, names.get(model)) for model in models)


def _is_endpoint(spec: str) -> bool:
    """Whether ``spec`` names a model behind a backend prefix (``openai:URL``), the kind ``--model-name`` is for."""
    return stored_model_id(spec) is None and split_spec(spec)[0] != DEFAULT_BACKEND


def _endpoint_names(endpoints: list[str], names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    if not endpoints:
        raise UserError("--model-name is the name an endpoint serves, but no --model is an endpoint (openai:URL); "
                        "leave it out")
    if len(names) == 1:
        return dict.fromkeys(endpoints, names[0])
    if len(names) != len(endpoints):
        raise UserError(f"{len(names)} --model-name values for {len(endpoints)} endpoints ({', '.join(endpoints)}); "
                        "give one per endpoint, in the order of their --model, or one that they all serve")
    return dict(zip(endpoints, names, strict=True))


def evaluate_models(
    request: EvaluateRequest,
    models: Sequence[ModelChoice],
    status: Status = lambda line: print(line, file=sys.stderr, flush=True),
    on_progress: Callable[[int, int], None] | None = None,
    on_cell_progress: CellProgress | None = None,
    one_run_only: str | None = None,
) -> Evaluation | SweepEvaluation:
    """``evaltune run``: one model on a suite without prompt variants is ``evaluate`` (``request.model`` and its
    name and adapter replaced by ``models[0]``'s); several models, or a suite with ``prompts:``, a sweep of every
    variant on every model (``request``'s model fields unused). Progress goes to ``on_progress`` for one run and to
    ``on_cell_progress`` (with the cell's label) for a sweep. ``one_run_only``: a sweep is refused with this reason
    (``UserError``) before anything is stored.

    Started by ``accelerate launch`` or ``torchrun`` (``current_launch``), every process shares the run (each
    sweep cell) and counts its own shard's progress; only the main process's outcome carries the metrics."""
    launch = current_launch()
    _check_shared_store(launch, request.store_url)
    suite = _load_checked(request, status)
    if one_run_only is not None and (len(models) > 1 or suite.variants):
        raise UserError(one_run_only)
    store = open_store(request.store_url)
    try:
        if len(models) == 1 and not suite.variants:
            one = replace(request, model=models[0].spec, model_name=models[0].model_name, adapter=models[0].adapter)
            evaluation: Evaluation | SweepEvaluation = _evaluate_in(store.sessions, one, suite, status, on_progress,
                                                                    launch)
        else:
            evaluation = SweepEvaluation(_sweep_in(store.sessions, request, models, suite, status, on_cell_progress,
                                                   launch), suite)
    finally:
        store.close()
    launch.close()
    return evaluation


def _check_shared_store(launch: Launch, url: str | None) -> None:
    """Refuse a launch over several machines into a SQLite file: each machine would write a store of its own."""
    url = url or database_url()
    if launch.machines > 1 and url.startswith("sqlite"):
        raise UserError(f"this launch runs on {launch.machines} machines but the store is a SQLite file "
                        f"({safe_url(url)}) that only one machine reaches: set EVALTUNE_DB_URL to a PostgreSQL "
                        "database every machine reaches (postgresql+psycopg://...)")


def evaluate(
    request: EvaluateRequest,
    status: Status = lambda line: print(line, file=sys.stderr, flush=True),
    on_progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Run ``request.suite`` on ``request.model`` into the store and return the stored run's outcome.

    A seed chosen for a suite that decodes greedily gets a warning through ``status``: it cannot change anything.
    """
    suite = _one_variant(_load_checked(request, status), request.variant)
    store = open_store(request.store_url)
    try:
        return _evaluate_in(store.sessions, request, suite, status, on_progress)
    finally:
        store.close()


def _load_checked(request: EvaluateRequest, status: Status) -> SuiteSpec:
    """The suite, with its scorers checked before any model loads; warns about a seed greedy decoding ignores."""
    suite = load_suite(request.suite)
    scorers = request.scorers if request.scorers is not None else suite.scorers
    for name in scorers:
        get_scorer(name)  # fail before loading a model
    run_judge(suite, scorers, request.judge)  # and a judge that is not there, before anything is generated
    if request.seed is not None and request.settings.apply(suite.generation).greedy:
        status(f"warning: --seed {request.seed} has no effect: {suite.name} decodes greedily (temperature 0), "
               "so every seed gives the same outputs; add --temperature above 0 to sample")
    return suite


def _one_variant(suite: SuiteSpec, variant: str | None) -> SuiteSpec:
    """The suite as ``variant`` asks it; a suite with prompt variants must be given one (one run asks one way)."""
    if variant is not None:
        return with_variant(suite, variant)
    if suite.variants:
        names = ", ".join(v.name for v in suite.variants)
        raise UserError(f"{suite.source or suite.name}: the suite has prompt variants ({names}); one run asks one "
                        "way: name a variant, or run every variant with 'evaltune run' (a sweep)")
    return suite


def _options(request: EvaluateRequest) -> RunOptions:
    seed = 0 if request.seed is None else request.seed
    return RunOptions(seed, request.scorers, request.batch_size, request.limit, settings.code_version(),
                      request.settings, judge=request.judge)


def _evaluate_in(sessions: sessionmaker[Session], request: EvaluateRequest, suite: SuiteSpec, status: Status,
                 on_progress: Callable[[int, int], None] | None, launch: Launch = SINGLE) -> Evaluation:
    model = _resolve(request, sessions)
    status(f"loading {model.display_name} ...")
    started = time.perf_counter()
    backend = model.load(request.load)
    load_s = time.perf_counter() - started
    items = len(suite.items) if request.limit is None else min(request.limit, len(suite.items))
    status(f"loaded in {load_s:.1f}s; running {suite.name} ({items} items)")
    try:
        outcome = run_suite(sessions, suite, backend, model.record(), _options(request), on_progress, launch)
    finally:
        backend.close()
    return Evaluation(outcome, suite, model, load_s)


def _sweep_in(sessions: sessionmaker[Session], request: EvaluateRequest, models: Sequence[ModelChoice],
              suite: SuiteSpec, status: Status, on_progress: CellProgress | None, launch: Launch) -> SweepOutcome:
    # Every model is resolved before any loads: a typo in the third --model fails the sweep before it starts.
    resolved = [SweepModel(choice.spec, _resolve(replace(request, model=choice.spec, model_name=choice.model_name,
                                                         adapter=choice.adapter), sessions))
                for choice in models]
    cells = len(resolved) * max(1, len(suite.variants))
    items = len(suite.items) if request.limit is None else min(request.limit, len(suite.items))
    status(f"sweep of {suite.name}: {max(1, len(suite.variants))} prompt variant(s) x {len(resolved)} model(s) = "
           f"{cells} runs of {items} items")
    return run_sweep(sessions, suite, resolved, _options(request), status=status, on_progress=on_progress,
                     load=lambda model: model.load(request.load), launch=launch)


def _resolve(request: EvaluateRequest, sessions: sessionmaker[Session]) -> ResolvedModel:
    stored_id = stored_model_id(request.model)
    if stored_id is not None:
        with sessions.begin() as session:
            row = session.get(ModelVersion, stored_id)
            if row is None:
                raise UserError(f"no model version {stored_id} in the store; see 'evaltune models list'")
            return ResolvedModel.from_version(row, threads=settings.threads())
    return resolve_model(request.model, adapter=request.adapter, model_name=request.model_name,
                         home=settings.home(), threads=settings.threads())
