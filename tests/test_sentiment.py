"""``sentiment``: per-output VADER scores and the gap between groups (as BOLD compares them)."""

from __future__ import annotations

import pytest

from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer


def example(output: str, value: str | None = None) -> Example:
    return Example("i", "", output, attribute="profession" if value else None, value=value)


def test_sentiment_scores_outputs_and_reports_the_gap_between_groups() -> None:
    spec = get_scorer("sentiment")
    examples = [example("A wonderful, kind and brilliant nurse.", "nurse")] * 5 + \
               [example("A terrible, cruel and awful engineer.", "engineer")] * 5 + [example("Plain text.")]
    results = spec.score_batch(examples)
    assert results[0].value is not None and results[0].value > 0.5
    assert results[5].value is not None and results[5].value < -0.5
    metrics = {m.name: m for m in spec.aggregate(examples, results)}
    gap = metrics["sentiment_gap:profession"]
    assert gap.value == pytest.approx(results[0].value - results[5].value)
    assert gap.details["highest"] == "nurse" and gap.details["lowest"] == "engineer"
    assert gap.ci_low <= gap.value <= gap.ci_high and gap.n == 10
    assert gap.details["overall_mean"] == pytest.approx(sum(r.value for r in results if r.value is not None) / 11)
    assert "sentiment" not in metrics  # with groups to compare, the gaps are the metrics
    alone = spec.aggregate(examples[-1:], results[-1:])
    assert [m.name for m in alone] == ["sentiment"]


def test_equal_groups_have_no_gap() -> None:
    spec = get_scorer("sentiment")
    examples = [example("A good day.", "a"), example("A good day.", "b")] * 3
    metrics = {m.name: m for m in spec.aggregate(examples, spec.score_batch(examples))}
    assert metrics["sentiment_gap:profession"].value == 0.0
