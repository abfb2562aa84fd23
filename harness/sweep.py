"""Sweeps: every prompt variant of a suite on every model, each cell an ordinary run, recorded together.

    outcome = run_sweep(sessions, suite, [SweepModel("./base", base), SweepModel("model:3", tuned)], options)

A suite's variants come from its ``prompts:`` (``harness.prompt_variants``); a suite without them has one,
``default``. Each model is loaded once and runs all its variants, one ``run_suite`` each: a cell's run is the
run ``evaltune run`` would make of that variant's suite on that model (same fingerprint, so the same cache,
resume and reuse). The sweep is found again by its fingerprint, so the same call after a kill resumes it: cells
whose run completed are reused without generating, the interrupted run is resumed, the rest are run.
Under ``accelerate launch`` (``launch``) every process runs the whole sweep, each cell sharded as one run is
(``harness.runner``): the main process records the sweep first and alone links and finishes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evaltune.db.base import utcnow
from evaltune.db.engine import in_transaction
from evaltune.db.sweeps import Sweep, SweepCell, cell_label, find_sweep
from evaltune.harness.backends.base import Backend
from evaltune.harness.distributed import SINGLE, Launch
from evaltune.harness.model_resolution import ResolvedModel
from evaltune.harness.prompt_variants import variant_names, with_variant
from evaltune.harness.runner import RunOptions, RunOutcome, run_judge, run_suite
from evaltune.harness.suite import SuiteSpec

SWEEP_SPEC_VERSION = 1  # of Sweep.spec's JSON
Status = Callable[[str], None]
CellProgress = Callable[[str, int, int], None]  # (cell label, done, total)
_log = logging.getLogger("evaltune.run")


@dataclass(frozen=True)
class SweepModel:
    """One model of a sweep: ``label`` is the ``--model`` text as given (``./base``, ``model:3``,
    ``openai:http://...``), which names its cells; ``model`` where it is and how to load it."""

    label: str
    model: ResolvedModel


@dataclass(frozen=True)
class CellOutcome:
    variant: str
    model_label: str
    outcome: RunOutcome

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.model_label)


@dataclass(frozen=True)
class SweepOutcome:
    sweep_id: int
    resumed: bool  # the sweep had been started before (interrupted, failed, or done and now shown again)
    cells: tuple[CellOutcome, ...]
    load_s: float  # loading the models, all together
    total_s: float


def run_sweep(
    sessions: sessionmaker[Session],
    suite: SuiteSpec,
    models: Sequence[SweepModel],
    options: RunOptions | None = None,
    *,
    status: Status = lambda line: None,
    on_progress: CellProgress | None = None,
    load: Callable[[ResolvedModel], Backend] = lambda model: model.load(),
    launch: Launch = SINGLE,
) -> SweepOutcome:
    """Run every variant of ``suite`` on every model of ``models`` into the store as one sweep; return its cells'
    runs in the order run (model by model, each model's variants in file order).

    Raises ``ValueError`` when two models have the same label. The sweep is stored once the first model has
    loaded (a judge that cannot be reached or a first model that cannot load leaves nothing stored); after that, a
    model or a cell that fails marks it failed and raises, and calling again with the same arguments resumes it.
    """
    options = options or RunOptions()
    labels = [m.label for m in models]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"a sweep needs one or more models, each named once; got {labels}")
    started = time.perf_counter()
    variants = variant_names(suite)
    suites = {name: with_variant(suite, name) for name in variants}  # rendered once, for every model
    start = partial(_start_or_resume, suite=suite, spec=sweep_spec(suite, suites, models, options), models=models,
                    variants=variants)
    # A judge that cannot be reached fails the sweep before anything is stored, as it fails a run.
    run_judge(suites[variants[0]], options.scorers if options.scorers is not None else suite.scorers, options.judge)
    sweep: tuple[int, bool] | None = None
    cells: list[CellOutcome] = []
    load_s = 0.0
    try:
        for model in models:
            status(f"loading {model.label} ...")
            loading = time.perf_counter()
            backend = load(model.model)
            load_s += time.perf_counter() - loading
            try:
                # Stored once the first model has loaded: a model that cannot load leaves nothing behind.
                if sweep is None:
                    sweep = launch.main_first(partial(in_transaction, sessions, start, lost_race_too=True))
                    status(f"sweep {sweep[0]}: " + ("found again; runs that completed are reused, an interrupted "
                                                    "one resumes" if sweep[1] else "new"))
                for variant in variants:
                    cells.append(_run_cell(sessions, sweep[0], suites[variant], variant, model, backend, options,
                                           status, on_progress, launch))
            finally:
                backend.close()
    except BaseException:
        if sweep is not None:
            with suppress(Exception):  # the store may be what failed; the error that stopped the sweep is the one
                in_transaction(sessions, partial(_finish, sweep_id=sweep[0], state="failed"), wait_s=0)
        raise
    assert sweep is not None  # models is not empty
    if launch.is_main:
        in_transaction(sessions, partial(_finish, sweep_id=sweep[0], state="completed"))
    return SweepOutcome(sweep[0], sweep[1], tuple(cells), round(load_s, 3), round(time.perf_counter() - started, 3))


def sweep_spec(suite: SuiteSpec, suites: dict[str, SuiteSpec], models: Sequence[SweepModel],
               options: RunOptions) -> dict[str, Any]:
    """What the sweep is, as ``Sweep.spec`` stores it: the suite (each variant's version), the models as given and
    as resolved, and the run options."""
    return {
        "schema_version": SWEEP_SPEC_VERSION,
        "suite": {"name": suite.name, "source": suite.source},
        "variants": [{"name": name, "content_hash": variant_suite.content_hash,
                      **_variant_fields(suite, name)} for name, variant_suite in suites.items()],
        "models": [{"label": m.label, **model_spec(m.model)} for m in models],
        "options": {"seed": options.seed, "scorers": None if options.scorers is None else list(options.scorers),
                    "limit": options.limit, "batch_size": options.batch_size, "settings": asdict(options.settings),
                    "judge": _judge_identity(options)},
        "code_version": options.code_version,
    }


def sweep_fingerprint(spec: dict[str, Any]) -> str:
    """What makes two sweeps the same sweep: each variant's suite version, the models (as given and where they
    are), the seed, scorers, limit, setting overrides and judge, and the code version. Not the batch size, nor the
    suite file's path, nor a model's display name, which change no output."""
    options = {key: value for key, value in spec["options"].items() if key != "batch_size"}
    payload = {
        "variants": [(v["name"], v["content_hash"]) for v in spec["variants"]],
        "models": [{key: m[key] for key in ("label", "backend", "location", "served_model", "adapter_path")}
                   for m in spec["models"]],
        "options": options,
        "code_version": spec["code_version"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def model_spec(model: ResolvedModel) -> dict[str, Any]:
    """A model as ``SweepCell.model_spec`` stores it: what ``ResolvedModel.from_stored`` rebuilds it from."""
    return {"backend": model.backend_kind, "location": model.location, "served_model": model.served_model,
            "adapter_path": model.adapter_path, "display_name": model.display_name}


def _judge_identity(options: RunOptions) -> str | None:
    return None if options.judge is None else options.judge.identity()


def _variant_fields(suite: SuiteSpec, name: str) -> dict[str, Any]:
    variant = next((v for v in suite.variants if v.name == name), None)
    return {"system": None, "template": None} if variant is None else {"system": variant.system,
                                                                      "template": variant.template}


def _start_or_resume(session: Session, suite: SuiteSpec, spec: dict[str, Any], models: Sequence[SweepModel],
                     variants: Sequence[str]) -> tuple[int, bool]:
    """The sweep's id, and whether it existed: found by fingerprint (and set running again), or made with a cell
    per model x variant, model by model, the order they run in."""
    fingerprint = sweep_fingerprint(spec)
    found = find_sweep(session, fingerprint)
    if found is not None:
        found.status, found.finished_at = "running", None
        return found.id, True
    sweep = Sweep(name=suite.name, fingerprint=fingerprint, spec=spec, status="running")
    pairs = [(model, variant) for model in models for variant in variants]
    sweep.cells = [SweepCell(position=position, variant=variant, model_label=model.label,
                             model_spec=model_spec(model.model))
                   for position, (model, variant) in enumerate(pairs)]
    session.add(sweep)
    session.flush()
    return sweep.id, False


def _run_cell(sessions: sessionmaker[Session], sweep_id: int, suite: SuiteSpec, variant: str, model: SweepModel,
              backend: Backend, options: RunOptions, status: Status, on_progress: CellProgress | None,
              launch: Launch) -> CellOutcome:
    label = cell_label(variant, model.label)
    progress = None if on_progress is None else partial(on_progress, label)
    outcome = run_suite(sessions, suite, backend, model.model.record(), options, progress, launch)
    if not launch.is_main:
        return CellOutcome(variant, model.label, outcome)
    in_transaction(sessions, partial(_link_run, sweep_id=sweep_id, variant=variant, model_label=model.label,
                                     run_id=outcome.run_id))
    how = ("reused, nothing generated" if outcome.reused else
           f"{outcome.generated} generated, {outcome.from_cache} from the cache, {outcome.already_stored} stored "
           "before")
    status(f"{label}: run {outcome.run_id} ({how})")
    return CellOutcome(variant, model.label, outcome)


def _link_run(session: Session, sweep_id: int, variant: str, model_label: str, run_id: int) -> None:
    cell = session.execute(select(SweepCell).where(SweepCell.sweep_id == sweep_id, SweepCell.variant == variant,
                                                   SweepCell.model_label == model_label)).scalar_one()
    if cell.run_id not in (None, run_id):
        # The model changed under the same name (new weights in the same folder): the cell shows the new run.
        _log.warning("sweep %d cell %s: run %s replaced by run %d", sweep_id, cell.label, cell.run_id, run_id)
    cell.run_id = run_id


def _finish(session: Session, sweep_id: int, state: str) -> None:
    sweep = session.get_one(Sweep, sweep_id)
    sweep.status = state
    sweep.finished_at = utcnow()
