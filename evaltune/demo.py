"""``evaltune demo``: the whole loop on one model with no person in it.

1. The regression suite's factual and fictional-entity items are split into a training suite and a held-out
   suite (by position, reproducibly). 2. The base model runs both. 3. A simulated rater (the annotator
   "simulated-rater"; every rating it writes has ``simulated`` set) rates the training run from the suite's own
   references, through the stored scores, the way an annotator does in the app: it reserves the next item and
   submits its answer through the annotation queue. A confident answer about an invented entity gets thumbs
   down, a hallucination flag and the correction "I don't know."; a wrong factual answer gets the reference as
   its correction; a right one gets thumbs up. 4. A ``correction`` dataset (each correction preferred over the
   output, each approved answer preferred over "I don't know.") and a DPO job; the worker trains it,
   registers the adapter and re-runs the held-out suite. 5. The comparison: hallucination rate on held-out
   fictional items and accuracy on held-out factual items, each with a paired 95% interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.engine import Store
from evaltune.db.evaluation import Run, Score, SuiteItem
from evaltune.db.ratings import CampaignItem, User
from evaltune.db.training import RetuneJob
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.feedback_ui.rating_task import load_task
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ResolvedModel
from evaltune.harness.runner import RunOptions, run_suite
from evaltune.harness.suite import item_to_dict
from evaltune.progress import Progress, printing
from evaltune.retune import jobs
from evaltune.retune.config import DpoConfig, RetuneConfig
from evaltune.retune.datasets import build_dataset
from evaltune.retune.reevaluate import EvalSettings, compare_runs
from evaltune.retune.strategies import StrategyParams
from evaltune.retune.worker import WorkerOptions, run_once

ABSTAIN = "I don't know."
SIMULATED_USER = "simulated-rater"
Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    home: Path
    train_share: float = 0.4  # of each kind of item; the rest is held out
    config: RetuneConfig = field(default_factory=lambda: DpoConfig(epochs=5, learning_rate=5e-4))
    threads: int = 0
    code_version: str = ""


@dataclass
class DemoResult:
    timings: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    job_id: int = 0
    adapter_model_id: int | None = None
    dataset_counts: dict[str, Any] = field(default_factory=dict)
    hallucination: dict[str, Any] = field(default_factory=dict)  # on held-out fictional items
    accuracy: dict[str, Any] = field(default_factory=dict)  # on held-out factual items
    collapse_check: dict[str, Any] = field(default_factory=dict)  # the job's (retune.collapse)


def write_suites(folder: Path, train_share: float) -> tuple[Path, Path]:
    """The regression suite's factual and fictional items as a training suite and a held-out suite."""
    regression = load_suite("regression")
    kinds: dict[str, list[dict[str, Any]]] = {"factual": [], "fictional": []}
    for item in regression.items:
        for kind in kinds:
            if kind in item.tags:
                kinds[kind].append({k: v for k, v in item_to_dict(item).items() if v not in (None, [], {}, False)})
    train, heldout = [], []
    for items in kinds.values():
        cut = round(len(items) * train_share)
        train += items[:cut]
        heldout += items[cut:]
    generation = {k: v for k, v in regression.generation.identity().items() if v is not None}
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in (("demo-train", train), ("demo-heldout", heldout)):
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "generation": generation,
                                        "scorers": ["answer_match", "abstention"], "items": items}))
        paths.append(path)
    return paths[0], paths[1]


def _simulated_answer(item: SuiteItem, scores: dict[str, float | None], output: str) -> SingleAnswer:
    """What a careful rater who knows the references would say about one output."""
    approved = SingleAnswer(likert=5, hallucination=False, thumbs=True)
    if item.expect_abstention:
        if scores.get("abstention") == 1.0:
            return approved
        return SingleAnswer(likert=1, thumbs=False, correction=ABSTAIN, **_flagged(output))
    if scores.get("answer_match") == 1.0:
        return approved
    reference = str(item.references[0]) if item.references else ABSTAIN
    return SingleAnswer(likert=2, thumbs=False, correction=reference.rstrip(".") + ".", **_flagged(output))


def _flagged(output: str) -> dict[str, Any]:
    """The hallucination flag, quoting the start of the output as the unsupported span (an empty output states
    nothing, so it is not flagged)."""
    span = output.strip()[:2000]
    return {"hallucination": bool(span), "hallucinated_span": span or None}


def _simulated_rater(session: Session) -> Account:
    user = session.scalar(select(User).where(User.name == SIMULATED_USER))
    if user is None:
        # "!" is no valid password hash: nobody can log in as the simulated rater.
        user = User(name=SIMULATED_USER, role="annotator", password_hash="!")
        session.add(user)
        session.flush()
    return Account(user.id, user.name, user.role)


def simulate_ratings(store: Store, run_id: int) -> int:
    """A campaign on the run, rated by the simulated rater from the run's scores through the annotation queue
    (reserve the next item, read it as the app shows it, submit); returns the campaign id."""
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name=f"demo: simulated ratings of run {run_id}", run_ids=[run_id],
                                   guidelines="Simulated from the suite's references by `evaltune demo`.")
        rater = _simulated_rater(session)
        items = session.scalar(select(func.count()).where(CampaignItem.campaign_id == campaign.id)) or 0
        with Progress("simulated ratings", total=items * campaign.overlap, unit="rating") as progress:
            while (reservation := claim_next(session, rater, campaign.id)) is not None:
                task = load_task(session, rater, reservation)
                shown = session.get_one(CampaignItem, reservation.campaign_item_id)
                scores = dict(session.execute(select(Score.scorer, Score.value)
                                              .where(Score.generation_id == shown.generation_id)).tuples().all())
                answer = _simulated_answer(session.get_one(SuiteItem, shown.item_id), scores, task.outputs[0])
                submit_rating(session, rater, reservation.assignment_id, answer, simulated=True)
                progress.advance()
        return campaign.id


def _run_base(store: Store, model: ResolvedModel, suites: list[Path], options: DemoOptions, log: Log) -> list[int]:
    backend = model.load()
    try:
        info = model.record()
        run_ids = []
        for path in suites:
            with Progress(f"generating {path.stem}", unit="output") as progress:
                outcome = run_suite(store.sessions, load_suite(str(path)), backend, info,
                                    RunOptions(code_version=options.code_version), on_progress=progress.update_to)
            log(f"base run {outcome.run_id} of {path.stem}")
            run_ids.append(outcome.run_id)
        return run_ids
    finally:
        backend.close()


def _metric(rows: list[dict[str, Any]], name: str, invert: bool = False) -> dict[str, Any]:
    row = next((r for r in rows if r["metric"] == name), None)
    if row is None:
        return {}
    if not invert:
        return row
    low, high = row["ci"]
    return {"metric": f"1 - {name}", "baseline": 1 - row["baseline"], "candidate": 1 - row["candidate"],
            "delta": -row["delta"], "ci": [-high, -low], "q": row["q"]}


STAGES = ("base runs", "ratings and dataset", "retune and re-run")


def run_demo(store: Store, model: ResolvedModel, options: DemoOptions, log: Log = print) -> DemoResult:
    """The loop end to end (see the module docstring); timings per step, numbers, and the ids to look at.

    On a terminal a bar counts the three stages, with a bar below it for the step under way (generating,
    rating, training, scoring); ``log``'s lines are printed between the bars."""
    result = DemoResult()
    log = printing(log)
    with Progress("demo", total=len(STAGES), unit="stage") as stages:
        clock = time.perf_counter()
        stages.note(STAGES[0])

        def step(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            result.timings[name] = round(now - clock, 1)
            log(f"[{name}: {now - clock:.1f}s]")
            clock = now
            stages.advance()
            stages.note(STAGES[min(stages.done, len(STAGES) - 1)])

        train_path, heldout_path = write_suites(options.home / "demo", options.train_share)
        train_run, heldout_run = _run_base(store, model, [train_path, heldout_path], options, log)
        result.runs.update(base_train=train_run, base_heldout=heldout_run)
        step(STAGES[0])
        _rate_and_queue(store, train_run, heldout_path, options, result)
        log(f"simulated ratings -> dataset {result.dataset_counts}; job {result.job_id} queued")
        step(STAGES[1])
        rows = _retune_and_compare(store, heldout_run, options, result, log)
        step(STAGES[2])
    result.hallucination = _metric(rows, "abstention", invert=True)
    result.accuracy = _metric(rows, "answer_match")
    (options.home / "demo" / "summary.json").write_text(json.dumps(asdict(result), indent=2, default=str))
    return result


def _rate_and_queue(store: Store, train_run: int, heldout_path: Path, options: DemoOptions,
                    result: DemoResult) -> None:
    """Simulated ratings of the training run, a ``correction`` dataset from them, and a retune job on it."""
    campaign_id = simulate_ratings(store, train_run)
    with store.session_scope() as session:
        dataset = build_dataset(session, campaign_id, "correction",
                                StrategyParams(holdout=0.0, abstention_anchor=ABSTAIN), "demo corrections")
        result.dataset_counts = dict(dataset.counts)
        base_id = session.get_one(Run, train_run).model_version_id
        result.job_id = jobs.enqueue(session, dataset_id=dataset.id, base_model_id=base_id, config=options.config,
                                     eval_suites=[str(heldout_path)]).id


def _retune_and_compare(store: Store, heldout_run: int, options: DemoOptions, result: DemoResult,
                        log: Log) -> list[dict[str, Any]]:
    """Run the job here (train, register, re-run the held-out suite); the held-out comparison's rows."""
    worker = WorkerOptions(home=options.home, name="demo", eval=EvalSettings(threads=options.threads,
                                                                               code_version=options.code_version))
    run_once(store, worker, log, job_id=result.job_id)
    with store.session_scope() as session:
        job = session.get(RetuneJob, result.job_id)
        assert job is not None
        if job.status not in ("succeeded", "degraded"):  # a degraded adapter is still compared, and said so
            raise RuntimeError(f"demo job {job.id} {job.status}: {job.error}\n{job.log[-2000:]}")
        result.collapse_check = dict(job.collapse_check or {})
        result.adapter_model_id = job.output_model_id
        result.runs["tuned_heldout"] = job.follow_up_run_ids[0]
        return compare_runs(session, heldout_run, result.runs["tuned_heldout"])
