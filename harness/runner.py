"""The runner: a suite against a model, into the store, resumable and cached.

    outcome = run_suite(sessions, suite, model, backend, RunOptions(seed=0))

A run is identified by its fingerprint (model, suite version, generation settings, seed,
scorers, item limit). If a run with that fingerprint was interrupted (a killed process leaves it
``running``), the next call resumes it: stored outputs are kept, the rest is generated. If one completed
under the same evaltune version, that run is the answer (``RunOutcome.reused``): it would be served wholly
from the cache and scored by the same code, so a new row would only repeat it.
Outputs already made by any earlier run with the same cache key are copied, not regenerated.
Each batch is written in its own transaction, so a kill loses at most one batch. Every write survives a
short loss of the store (a PostgreSQL restart) by redoing its transaction (``db.engine.in_transaction``).

Under ``accelerate launch`` or ``torchrun`` (``launch``: ``harness.distributed``) every process runs this same
call: the main process creates or resumes the run, then each process generates the missing outputs of its own
shard of the work into that run, and once all are done the main process makes anything still missing, scores
the run and completes it. A relaunch after a kill resumes the run like a single process does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from evaltune.db import queries
from evaltune.db.base import utcnow
from evaltune.db.engine import in_transaction
from evaltune.db.evaluation import Run
from evaltune.harness.backends.base import Backend, OutputsDone, generate_with_progress
from evaltune.harness.distributed import SINGLE, Launch
from evaltune.harness.judges.config import JudgeSpec, configured_judge
from evaltune.harness.judges.judge import check_judge
from evaltune.harness.model_resolution import ModelRecord
from evaltune.harness.prompts import PromptError, storable_text
from evaltune.harness.scoring import MetricRow, score_run
from evaltune.harness.store_records import generation_totals, store_model_version, store_suite
from evaltune.harness.suite import Item, SettingsOverrides, SuiteSpec
from evaltune.harness.work import Work, plan_work
from evaltune.metrics.judging import JUDGED_ASSERTIONS
from evaltune.metrics.registry import get_scorer

ProgressCallback = Callable[[int, int], None]  # (done, total)
_log = logging.getLogger("evaltune.run")


@dataclass(frozen=True)
class RunOptions:
    seed: int = 0
    scorers: tuple[str, ...] | None = None  # None: the suite's own
    batch_size: int | None = None  # None: the suite's own
    limit: int | None = None  # only the first N items
    code_version: str = ""
    settings: SettingsOverrides = field(default_factory=SettingsOverrides)  # instead of the suite's own
    judge: JudgeSpec | None = None  # --judge: for a suite that names no judge of its own (harness.judges.config)


# "resumed": an interrupted run goes on; "reused": a completed run with the same fingerprint is the answer.
RunState = Literal["new", "resumed", "reused"]


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    resumed: bool
    generated: int
    from_cache: int
    already_stored: int
    metrics: list[MetricRow]
    stats: dict[str, Any]
    reused: bool = False  # an earlier completed run with the same fingerprint: nothing generated or stored


def run_suite(
    sessions: sessionmaker[Session],
    suite: SuiteSpec,
    backend: Backend,
    model: ModelRecord,
    options: RunOptions = RunOptions(),
    on_progress: ProgressCallback | None = None,
    launch: Launch = SINGLE,
) -> RunOutcome:
    """Generate, store and score ``suite`` on ``backend``; return the run's id and metrics.

    ``model`` is the model version the run belongs to (``ResolvedModel.record``), registered if new. The whole
    suite is stored as its version; ``options.limit`` limits the run, not the version, so a full run and a
    limited one pair on the items they share.

    In a data-parallel ``launch`` every process calls this with the same arguments; ``on_progress`` counts this
    process's shard. The main process returns the whole run's outcome (counts summed over the processes); the
    others return their own counts, with no metrics or stats.
    """
    started = time.perf_counter()
    suite = _apply_options(suite, options)
    items, limit = _limited(suite.items, options.limit)
    scorers = tuple(options.scorers if options.scorers is not None else suite.scorers)
    judge = run_judge(suite, scorers, options.judge)
    fingerprint = run_fingerprint(backend.fingerprint, suite, options.seed, scorers, limit,
                                  judge.identity() if judge else None)

    def start(session: Session) -> tuple[int, dict[str, int], RunState]:
        model_id = store_model_version(session, model, backend.fingerprint)
        suite_id, item_ids = store_suite(session, suite)
        run, state = _start_or_resume(session, suite, suite_id, model_id, fingerprint, scorers, options, limit)
        return run.id, item_ids, state

    # Every prompt is rendered before anything is stored: an item the model cannot take fails the run up front.
    planned = _plan(backend, suite, items, options.seed, scorers)
    run_id, item_ids, state = launch.main_first(partial(in_transaction, sessions, start))
    if state == "reused":
        return in_transaction(sessions, partial(_reused_outcome, run_id=run_id, started=started))
    resumed = state == "resumed"
    work = [replace(w, item_row_id=item_ids[w.item.id]) for w in planned]
    counts = _generate_missing(sessions, run_id, backend, suite, launch.shard(work), on_progress)
    every_count = launch.gather(counts)  # also the barrier: every shard is stored past this line
    if not launch.is_main:
        return RunOutcome(run_id, resumed, counts["generated"], counts["from_cache"], counts["already_stored"],
                          [], {})
    counts = {key: sum(c[key] for c in every_count) for key in counts}
    _redo_lost(sessions, run_id, backend, suite, work)
    generation_s = time.perf_counter() - started

    def finish(session: Session) -> tuple[list[MetricRow], dict[str, Any]]:
        metrics = score_run(session, run_id, scorers, judge)
        run = session.get_one(Run, run_id)
        stats = _run_stats(session, run_id, counts, generation_s, time.perf_counter() - started)
        run.status, run.finished_at, run.stats, run.error = "completed", utcnow(), stats, None
        return metrics, stats

    metrics, stats = in_transaction(sessions, finish)
    return RunOutcome(run_id, resumed, counts["generated"], counts["from_cache"], counts["already_stored"],
                      metrics, stats)


def run_judge(suite: SuiteSpec, scorers: Sequence[str], given: JudgeSpec | None) -> JudgeSpec | None:
    """The judge the run's judged checks use (``configured_judge``), checked to exist before anything is generated;
    None when no scorer or assertion of the run asks a judge, or when none is named (they are then skipped)."""
    asks_judge = any("judge" in get_scorer(name).needs for name in scorers) or any(
        a.type in JUDGED_ASSERTIONS for item in suite.items for a in item.assertions)
    if not asks_judge:
        return None
    judge = configured_judge(suite.judge, given)
    if judge is not None:
        check_judge(judge)
    return judge


def _plan(backend: Backend, suite: SuiteSpec, items: Sequence[Item], seed: int, scorers: Sequence[str]) -> list[Work]:
    try:
        return plan_work(backend, items, suite.generation, seed, wants_reference_logprobs(scorers))
    except PromptError as error:
        raise PromptError(f"suite {suite.source or suite.name}: {error}") from None


def _apply_options(suite: SuiteSpec, options: RunOptions) -> SuiteSpec:
    """The suite with the run's generation settings (its batch size and overrides) in place of its own."""
    generation = options.settings.apply(suite.generation)
    if options.batch_size is not None:
        generation = replace(generation, batch_size=options.batch_size)
    return replace(suite, generation=generation)


def _limited(items: tuple[Item, ...], limit: int | None) -> tuple[tuple[Item, ...], int | None]:
    """The first ``limit`` items, and the limit as the run records it: None when it leaves every item in."""
    if limit is None or limit >= len(items):
        return items, None
    return items[:limit], limit


def wants_reference_logprobs(scorers: Sequence[str]) -> bool:
    """True when a scorer needs both references and log-probs (perplexity): log P(reference | prompt)."""
    return any({"reference", "logprobs"} <= set(get_scorer(name).needs) for name in scorers)


def run_fingerprint(
    model_fp: str, suite: SuiteSpec, seed: int, scorers: Sequence[str], limit: int | None = None,
    judge: str | None = None,
) -> str:
    """What makes two runs the same run: model, suite version, settings, the seed where it matters, scorers, item
    limit and, for a run with judged checks, the judge (``suite`` carries the run's own generation settings)."""
    settings = suite.generation
    payload = [model_fp, suite.content_hash, settings.identity(), settings.output_seed(seed), sorted(scorers), limit]
    if judge is not None:  # only then: runs without a judge keep the fingerprints they always had
        payload.append(judge)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _start_or_resume(
    session: Session,
    suite: SuiteSpec,
    suite_id: int,
    model_id: int,
    fingerprint: str,
    scorers: tuple[str, ...],
    options: RunOptions,
    limit: int | None,
) -> tuple[Run, RunState]:
    done = queries.find_completed_run(session, fingerprint, options.code_version)
    if done is not None:
        return done, "reused"
    existing = queries.find_resumable_run(session, fingerprint)
    if existing is not None:
        existing.status = "running"
        return existing, "resumed"
    run = Run(
        suite_id=suite_id,
        model_version_id=model_id,
        generation=suite.generation.identity() | {"batch_size": suite.generation.batch_size},
        seed=options.seed,
        item_limit=limit,
        scorers=list(scorers),
        fingerprint=fingerprint,
        status="running",
        code_version=options.code_version,
    )
    session.add(run)
    session.flush()
    return run, "new"


def _reused_outcome(session: Session, run_id: int, started: float) -> RunOutcome:
    """A completed run as ``run_suite`` reports it: its stored metrics, its outputs' totals, and this call's
    counts and time, in which every output counts as served from the cache (where a new run would have found
    them all). Nothing is written."""
    run = session.get_one(Run, run_id)
    metrics = [MetricRow(m.name, m.scorer, m.family, m.higher_is_better, m.value, m.ci_low, m.ci_high, m.n,
                         dict(m.details or {})) for m in run.metrics]
    totals = generation_totals(session, run_id)
    counts = {"already_stored": 0, "from_cache": int(totals["outputs"]), "generated": 0}
    stats = dict(run.stats or {}) | counts | totals | {
        "generation_s": 0.0, "total_s": round(time.perf_counter() - started, 3), "tokens_per_s": None}
    return RunOutcome(run_id, False, 0, counts["from_cache"], 0, metrics, stats, reused=True)


def _generate_missing(
    sessions: sessionmaker[Session],
    run_id: int,
    backend: Backend,
    suite: SuiteSpec,
    work: list[Work],
    on_progress: ProgressCallback | None,
) -> dict[str, int]:

    def plan(session: Session) -> tuple[list[Work], list[Work], list[dict[str, Any]]]:
        stored = queries.stored_generation_keys(session, run_id)
        todo = [w for w in work if (w.item_row_id, w.sample_index) not in stored]
        cached = queries.cached_generations(session, [w.cache_key for w in todo])
        copies = [w for w in todo if w.cache_key in cached]
        return todo, copies, [_copied_row(run_id, w, cached[w.cache_key]) for w in copies]

    todo, copies, copied_rows = in_transaction(sessions, plan)
    # Outside the transaction: scoring references runs the model, and SQLite would hold its lock meanwhile.
    _add_reference_logprobs(backend, copies, copied_rows)
    in_transaction(sessions, partial(queries.insert_generations, rows=copied_rows))
    copied = {w.cache_key for w in copies}
    todo = [w for w in todo if w.cache_key not in copied]
    counts = {"already_stored": len(work) - len(todo) - len(copies), "from_cache": len(copies), "generated": 0}
    done = len(work) - len(todo)
    if on_progress:
        on_progress(done, len(work))
    for batch in _batches(todo, suite.generation.batch_size):
        rows = _run_batch(run_id, backend, suite, batch, _within_batch(on_progress, done, len(work)))
        in_transaction(sessions, partial(queries.insert_generations, rows=rows))
        done += len(batch)
        counts["generated"] += len(batch)
        if on_progress:
            on_progress(done, len(work))
    return counts


def _redo_lost(
    sessions: sessionmaker[Session], run_id: int, backend: Backend, suite: SuiteSpec, work: list[Work]
) -> None:
    """Make again any output the store confirmed but no longer has, so that a run never completes with a hole.

    A database server that crashes without durable commits (PostgreSQL with synchronous_commit off, a
    failover to a replica that lagged) loses its last confirmed transactions. Normally this finds nothing.
    """
    again = _generate_missing(sessions, run_id, backend, suite, work, None)
    lost = again["generated"] + again["from_cache"]
    if lost:
        _log.warning("the store lost %d outputs of run %d after confirming them (a database crash without durable "
                     "commits?); they were made again", lost, run_id)


def _batches(work: list[Work], size: int) -> list[list[Work]]:
    """Batches of similar prompt length, so that left padding wastes little compute."""
    ordered = sorted(work, key=lambda w: len(w.prompt_text))
    return [ordered[start : start + size] for start in range(0, len(ordered), max(1, size))]


def _within_batch(on_progress: ProgressCallback | None, done: int, total: int) -> OutputsDone | None:
    """A callback for the backend that moves the progress as outputs finish inside a batch (the batch's end
    then sets it exactly), so a batch of 256 is not one jump."""
    if on_progress is None:
        return None
    finished = done

    def on_output(count: int) -> None:
        nonlocal finished
        finished += count
        on_progress(finished, total)

    return on_output


def _run_batch(run_id: int, backend: Backend, suite: SuiteSpec, batch: list[Work],
               on_output: OutputsDone | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    choice_work = [w for w in batch if w.item.is_multiple_choice]
    text_work = [w for w in batch if not w.item.is_multiple_choice]
    if text_work:
        requests = [w.generation_request(suite.generation) for w in text_work]
        for w, completion in zip(text_work, generate_with_progress(backend, requests, on_output), strict=True):
            rows.append(_row(run_id, w, output=completion.text, prompt_tokens=completion.prompt_tokens,
                             completion_tokens=completion.completion_tokens, latency_s=completion.latency_s,
                             finish_reason=completion.finish_reason))
        _add_reference_logprobs(backend, text_work, rows)
    if choice_work:
        choice_requests = [r for w in choice_work for r in w.choice_requests()]
        started = time.perf_counter()
        results = iter(backend.loglikelihood(choice_requests))
        latency = (time.perf_counter() - started) / len(choice_work)
        for w in choice_work:
            scored = [next(results) for _ in w.item.choices]
            rows.append(_row(run_id, w, choice_logprobs=[r.logprob for r in scored],
                             prompt_tokens=sum(r.tokens for r in scored), latency_s=latency))
    return rows


def _add_reference_logprobs(backend: Backend, work: list[Work], rows: list[dict[str, Any]]) -> None:
    """Store [logprob, tokens] per reference in ``reference_logprobs`` of the rows that asked for them;
    ``harness.scoring`` reads them back as ``Example.reference_logprobs`` / ``reference_tokens``."""
    wanted = [(w, row) for w, row in zip(work, rows, strict=True) if w.scores_references]
    if not wanted:
        return
    results = iter(backend.loglikelihood([r for w, _ in wanted for r in w.reference_requests()]))
    for w, row in wanted:
        row["reference_logprobs"] = [[r.logprob, r.tokens] for r in (next(results) for _ in w.item.references)]


def _row(run_id: int, w: Work, **fields: Any) -> dict[str, Any]:
    if "output" in fields:
        fields["output"] = storable_text(fields["output"])
    return {"run_id": run_id, "item_id": w.item_row_id, "sample_index": w.sample_index,
            "cache_key": w.cache_key, "prompt": storable_text(w.prompt_text), "cached": False} | fields


def _copied_row(run_id: int, w: Work, source: Any) -> dict[str, Any]:
    # A text item's reference scores are never copied: its references may differ from the source's.
    logprobs = source.choice_logprobs if w.item.is_multiple_choice else None
    return _row(run_id, w, output=source.output, choice_logprobs=logprobs,
                prompt_tokens=source.prompt_tokens, completion_tokens=source.completion_tokens,
                latency_s=source.latency_s, finish_reason=source.finish_reason) | {"cached": True}


def _run_stats(session: Session, run_id: int, counts: dict[str, int], generation_s: float,
               total_s: float) -> dict[str, Any]:
    totals = generation_totals(session, run_id)
    fresh_tokens = totals["fresh_completion_tokens"]
    fresh_latency = totals["fresh_latency_s"]
    return counts | totals | {
        "generation_s": round(generation_s, 3),
        "total_s": round(total_s, 3),
        "tokens_per_s": round(fresh_tokens / fresh_latency, 2) if fresh_latency else None,
    }
