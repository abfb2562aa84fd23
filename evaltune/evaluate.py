"""``evaluate``: the one function behind ``evaltune run`` — resolve, load, run, score, store.

This is where the parts are wired together; each part stays usable on its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from evaltune import settings
from evaltune.db.engine import open_store
from evaltune.db.evaluation import ModelVersion
from evaltune.errors import UserError
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ResolvedModel, resolve_model, stored_model_id
from evaltune.harness.runner import RunOptions, RunOutcome, run_suite
from evaltune.harness.suite import SettingsOverrides, SuiteSpec
from evaltune.metrics.registry import get_scorer

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


@dataclass(frozen=True)
class Evaluation:
    outcome: RunOutcome
    suite: SuiteSpec
    model: ResolvedModel
    load_s: float


def evaluate(
    request: EvaluateRequest,
    status: Status = lambda line: print(line, file=sys.stderr, flush=True),
    on_progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Run ``request.suite`` on ``request.model`` into the store and return the stored run's outcome.

    A seed chosen for a suite that decodes greedily gets a warning through ``status``: it cannot change anything.
    """
    suite = load_suite(request.suite)
    for name in request.scorers if request.scorers is not None else suite.scorers:
        get_scorer(name)  # fail before loading a model
    if request.seed is not None and request.settings.apply(suite.generation).greedy:
        status(f"warning: --seed {request.seed} has no effect: {suite.name} decodes greedily (temperature 0), "
               "so every seed gives the same outputs; add --temperature above 0 to sample")
    store = open_store(request.store_url)
    try:
        return _evaluate_in(store.sessions, request, suite, status, on_progress)
    finally:
        store.close()


def _evaluate_in(sessions: sessionmaker[Session], request: EvaluateRequest, suite: SuiteSpec, status: Status,
                 on_progress: Callable[[int, int], None] | None) -> Evaluation:
    model = _resolve(request, sessions)
    status(f"loading {model.display_name} ...")
    started = time.perf_counter()
    backend = model.load()
    load_s = time.perf_counter() - started
    items = len(suite.items) if request.limit is None else min(request.limit, len(suite.items))
    status(f"loaded in {load_s:.1f}s; running {suite.name} ({items} items)")
    try:
        seed = 0 if request.seed is None else request.seed
        options = RunOptions(seed, request.scorers, request.batch_size, request.limit, settings.code_version(),
                             request.settings)
        outcome = run_suite(sessions, suite, backend, model.record(), options, on_progress)
    finally:
        backend.close()
    return Evaluation(outcome, suite, model, load_s)


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
