"""After training: did the retune damage what the base model could already do?

A retune on a handful of rows can wreck a small model while the follow-up report, on a few items, still says
"no significant change". So the worker compares the adapter with its base on two things the retune was not
trying to change:

- **Perplexity of plain English**: ``general_english.txt`` (30 everyday sentences written for this project) scored
  by log-likelihood. The adapter is degraded when its perplexity is more than ``PERPLEXITY_RATIO_LIMIT`` (1.5)
  times the base's, or not a finite number.
- **The canary suite** (``harness/suites/canary.yaml``): forty easy facts scored with ``answer_match``, run on the
  base and on the adapter as ordinary stored runs (the base's run is reused while it stays the same). The
  adapter is degraded when the paired 95% interval of its accuracy change lies wholly below zero: it lost more
  canaries than chance explains (with 40 items, about four more lost than gained).

Why these limits, measured on SmolLM2-135M-Instruct retuned with DPO on ``evaltune demo``'s 34 rows (README,
retune section): every retune that kept the model working, from learning rate 5e-5 up to 5e-3 (which already
made it answer "I don't know" to most questions), left the perplexity ratio between 0.99 and 1.01 and lost at
most 5 canaries, within the interval; the retune that wrecked it (3e-2: every answer a row of dots) multiplied
the perplexity by about 1,200 and lost all 25 canaries the base knew. 1.5 sits far from both; the interval keeps
a few unlucky questions from raising the alarm.

``check_after_training`` is the worker's one call: it stores the figures in the job's ``collapse_check``, and
``retune.jobs.finish`` then records a job that would have succeeded as ``degraded``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from evaltune.db.engine import in_transaction
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import RetuneJob
from evaltune.harness.backends.base import Backend, LoglikelihoodRequest
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ModelRecord, ResolvedModel
from evaltune.harness.runner import RunOptions, run_suite
from evaltune.retune.reevaluate import EvalSettings

Log = Callable[[str], None]

PERPLEXITY_RATIO_LIMIT = 1.5
TEXT_SET = Path(__file__).resolve().with_name("general_english.txt")
CANARY_SUITE = "canary"
CANARY_METRIC = "answer_match"
CHECK_VERSION = 1  # of the JSON stored in RetuneJob.collapse_check


@dataclass(frozen=True)
class Canary:
    """The canary suite on base and adapter: accuracies, the paired change with its 95% interval, the lost items."""

    items: int
    base_accuracy: float
    adapter_accuracy: float
    change: float
    change_ci: tuple[float, float]
    lost: tuple[str, ...]  # canary items the base answered and the adapter did not
    base_run: int | None = None
    adapter_run: int | None = None


@dataclass(frozen=True)
class CollapseCheck:
    """The adapter against its base on plain-English perplexity and the canary suite."""

    base_perplexity: float
    adapter_perplexity: float
    canary: Canary

    @property
    def perplexity_ratio(self) -> float:
        return self.adapter_perplexity / self.base_perplexity if self.base_perplexity > 0 else math.inf

    @property
    def reasons(self) -> list[str]:
        """Which checks the adapter failed (``perplexity``, ``canary``); empty when it kept what the base could do."""
        found = []
        # "not ratio <= limit" so that a NaN or infinite perplexity (weights that diverged) counts as degraded.
        if not self.perplexity_ratio <= PERPLEXITY_RATIO_LIMIT:
            found.append("perplexity")
        if self.canary.change_ci[1] < 0:
            found.append("canary")
        return found

    @property
    def degraded(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        """One line with every figure, saying which limit was crossed: both perplexities and their ratio, both
        canary accuracies and the paired change with its 95% interval."""
        reasons = self.reasons
        c = self.canary
        low, high = c.change_ci
        limit = f"over the x{PERPLEXITY_RATIO_LIMIT:g} limit" if "perplexity" in reasons else \
            f"limit x{PERPLEXITY_RATIO_LIMIT:g}"
        return (f"perplexity of plain English {_number(self.base_perplexity)} → {_number(self.adapter_perplexity)} "
                f"(x{_number(self.perplexity_ratio, 2)}, {limit}); canary accuracy {c.base_accuracy:.2f} → "
                f"{c.adapter_accuracy:.2f} on {c.items} easy facts ({len(c.lost)} lost; change {c.change:+.2f}, "
                f"95% CI [{low:+.2f}, {high:+.2f}]{', wholly below zero' if 'canary' in reasons else ''})")

    def as_json(self) -> dict[str, Any]:
        """What the job stores: the verdict, the line that says it, and every figure (JSON-safe: no NaN)."""
        c = self.canary
        return {
            "version": CHECK_VERSION, "checked": True, "degraded": self.degraded, "reasons": self.reasons,
            "summary": self.summary(),
            "perplexity": {"base": _finite(self.base_perplexity), "adapter": _finite(self.adapter_perplexity),
                           "ratio": _finite(self.perplexity_ratio), "limit": PERPLEXITY_RATIO_LIMIT,
                           "text_set": TEXT_SET.name},
            "canary": {"suite": CANARY_SUITE, "metric": CANARY_METRIC, "items": c.items, "base": c.base_accuracy,
                       "adapter": c.adapter_accuracy, "change": c.change, "ci": list(c.change_ci),
                       "lost": list(c.lost), "base_run": c.base_run, "adapter_run": c.adapter_run},
        }


def _number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "not a finite number"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def text_set() -> list[str]:
    """The plain-English sentences whose perplexity is compared, one per line of ``general_english.txt``."""
    return [line.strip() for line in TEXT_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def perplexity(backend: Backend, sentences: Sequence[str]) -> float:
    """Token-weighted perplexity of the sentences, each scored on its own from the start of a text:
    exp(-sum of log-probs / sum of tokens). NaN when the model's log-probs are not numbers."""
    scored = backend.loglikelihood([LoglikelihoodRequest("", sentence) for sentence in sentences])
    tokens = sum(result.tokens for result in scored)
    mean_loss = -sum(result.logprob for result in scored) / max(tokens, 1)
    # exp overflows past about 709: any perplexity that large is infinite for this purpose.
    return math.exp(mean_loss) if mean_loss < 700 else math.inf


def compare_canary(session: Session, base_run: int, adapter_run: int) -> Canary:
    """The canary runs' ``answer_match`` compared item by item (``reports.compare``: paired bootstrap interval)."""
    from evaltune.reports.compare import build_report

    report = build_report(session, base_run, adapter_run)
    metric = next((m for m in report.metrics if m.name == CANARY_METRIC), None)
    if metric is None:
        raise ValueError(f"the canary runs {base_run} and {adapter_run} have no {CANARY_METRIC} scores to compare")
    lost = tuple(flip.key for flip in report.flipped if CANARY_METRIC in flip.lost)
    return Canary(metric.baseline.n, metric.baseline.value, metric.candidate.value, metric.delta,
                  (metric.delta_ci_low, metric.delta_ci_high), lost, base_run, adapter_run)


def check_adapter(
    sessions: sessionmaker[Session], base: tuple[Backend, ModelRecord], adapter: tuple[Backend, ModelRecord],
    settings: EvalSettings,
) -> CollapseCheck:
    """Both models on the text set and on the canary suite (stored runs, each model's own version)."""
    sentences = text_set()
    suite = load_suite(CANARY_SUITE)
    options = RunOptions(seed=settings.seed, code_version=settings.code_version)
    run_ids = [run_suite(sessions, suite, backend, record, options).run_id for backend, record in (base, adapter)]
    with sessions() as session:
        canary = compare_canary(session, run_ids[0], run_ids[1])
    return CollapseCheck(perplexity(base[0], sentences), perplexity(adapter[0], sentences), canary)


def check_after_training(
    sessions: sessionmaker[Session], adapter: Backend, adapter_record: ModelRecord, settings: EvalSettings,
    log: Log,
) -> CollapseCheck | None:
    """The worker's call once the adapter is registered and loaded: compare it with its base (the record's
    ``parent_id``), store the figures in the job (``adapter_record.retune_job_id``) and log them.

    A check that cannot run (the base's folder is gone) is logged and stored as not run; it does not fail a job
    whose adapter trained and registered. Returns the check, or None when it did not run."""
    job_id, base_id = adapter_record.retune_job_id, adapter_record.parent_id
    if job_id is None or base_id is None:
        raise ValueError("the collapse check needs the adapter's retune job and base model version")
    try:
        base = _load_base(sessions, base_id, settings)
        try:
            check = check_adapter(sessions, base, (adapter, adapter_record), settings)
        finally:
            base[0].close()
    except Exception as error:  # see the docstring: the adapter exists; say the check is missing, and why
        message = f"{type(error).__name__}: {error}"
        log(f"warning: the collapse check could not run ({message}); compare the adapter with its base by hand")
        _store(sessions, job_id, {"version": CHECK_VERSION, "checked": False, "error": message})
        return None
    _store(sessions, job_id, check.as_json())
    log(f"{'DEGRADED' if check.degraded else 'collapse check passed'}: {check.summary()}")
    return check


def _load_base(sessions: sessionmaker[Session], base_id: int, settings: EvalSettings) -> tuple[Backend, ModelRecord]:
    with sessions() as session:
        version = session.get(ModelVersion, base_id)
        if version is None:
            raise LookupError(f"base model version {base_id} is gone from the store")
        model = ResolvedModel.from_version(version, threads=settings.threads)
    return model.load(settings.load), model.record()


def _store(sessions: sessionmaker[Session], job_id: int, data: dict[str, Any]) -> None:
    def write(session: Session) -> None:
        session.execute(update(RetuneJob).where(RetuneJob.id == job_id).values(collapse_check=data))

    in_transaction(sessions, write, hint=f"job {job_id}'s collapse check is lost; 'evaltune jobs retry {job_id}'")


def check_lines(stored: Mapping[str, Any] | None) -> list[str]:
    """A job's stored collapse check as a person reads it: ``DEGRADED: ...`` with the figures and what to do, a
    passed check's figures, or why the check did not run; nothing for a job it has not run on yet."""
    if not stored:
        return []
    if not stored.get("checked"):
        return [f"warning: the collapse check did not run ({stored.get('error')}); compare the adapter with its "
                "base by hand"]
    if not stored.get("degraded"):
        return [f"collapse check passed: {stored.get('summary')}"]
    canary = stored.get("canary") or {}
    runs = (f"; 'evaltune report {canary['base_run']} {canary['adapter_run']}' shows the canary answers it lost"
            if canary.get("base_run") and canary.get("adapter_run") else "")
    return [f"DEGRADED: {stored.get('summary')}",
            "  the adapter does worse than its base at what the retune was not meant to change: retune with a "
            f"lower --lr or fewer --epochs, or on more rows{runs}"]
