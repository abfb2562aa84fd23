"""From assertion results to an item's verdict and the run's rates.

An item passes when every assertion that counts (weight above 0, not skipped) passed; its score is the
weighted share that passed. ``pass_rate`` is the share of outputs with a verdict that pass, so a report can pair
it item by item between two runs; ``pass_rate:<type>`` and ``pass_rate:<metric>`` are shares of assertions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from evaltune.metrics.records import Assertion, AssertionResult, Example, MetricValue
from evaltune.metrics.stats.intervals import mean_with_ci, wilson_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemVerdict:
    """One output's verdict. ``passed`` and ``score`` are None when no assertion counted; ``failed`` lists every
    failed assertion (0-based, those of weight 0 included: reported, never failing the item); ``skipped`` those
    that could not be judged."""

    passed: bool | None
    score: float | None
    failed: tuple[int, ...]
    skipped: tuple[int, ...]


def item_verdict(assertions: Sequence[Assertion], results: Sequence[AssertionResult]) -> ItemVerdict:
    """The verdict on one output from its assertions and their results (aligned)."""
    counted = [(a.weight, bool(r.passed)) for a, r in zip(assertions, results, strict=True)
               if a.weight > 0 and r.passed is not None]
    failed = tuple(k for k, r in enumerate(results) if r.passed is False)
    skipped = tuple(k for k, r in enumerate(results) if r.passed is None)
    if not counted:
        return ItemVerdict(None, None, failed, skipped)
    score = sum(weight for weight, passed in counted if passed) / sum(weight for weight, _ in counted)
    return ItemVerdict(all(passed for _, passed in counted), score, failed, skipped)


def _rate(name: str, outcomes: Sequence[bool], details: dict[str, object] | None = None) -> MetricValue:
    low, high = wilson_interval(sum(outcomes), len(outcomes))
    return MetricValue(name, sum(outcomes) / len(outcomes), low, high, len(outcomes), details or {})


def assertion_metrics(examples: Sequence[Example], results: Sequence[Sequence[AssertionResult]]) -> list[MetricValue]:
    """``pass_rate`` (outputs that pass, Wilson 95% CI), ``assertion_score`` (mean weighted score), and
    ``pass_rate:<type as written>`` and ``pass_rate:<metric>`` (assertions that pass); empty when no output has
    an assertion that could be judged."""
    verdicts = [item_verdict(e.assertions, r) for e, r in zip(examples, results, strict=True) if e.assertions]
    judged = [v for v in verdicts if v.passed is not None]
    reasons = Counter(r.reason for rs in results for r in rs if r.passed is None)
    if not judged:
        if verdicts:
            log.warning("no assertion could be judged on any output: %s", "; ".join(reasons))
        return []
    details: dict[str, object] = {
        "outputs": len(verdicts), "judged": len(judged), "assertions": sum(len(e.assertions) for e in examples),
        "skipped": sum(reasons.values()), "skipped_reasons": dict(reasons.most_common()),
    }
    score = mean_with_ci([v.score for v in judged if v.score is not None])
    metrics = [_rate("pass_rate", [bool(v.passed) for v in judged], details),
               MetricValue("assertion_score", score.value, score.ci_low, score.ci_high, score.n)]
    by_type: dict[str, list[bool]] = {}
    by_metric: dict[str, list[bool]] = {}
    for example, rs in zip(examples, results, strict=True):
        for assertion, result in zip(example.assertions, rs, strict=True):
            if result.passed is None:
                continue
            by_type.setdefault(assertion.label, []).append(result.passed)
            if assertion.metric is not None:
                by_metric.setdefault(assertion.metric, []).append(result.passed)
    metrics += [_rate(f"pass_rate:{label}", outcomes) for label, outcomes in sorted(by_type.items())]
    metrics += [_rate(f"pass_rate:{metric}", outcomes) for metric, outcomes in sorted(by_metric.items())]
    return metrics
