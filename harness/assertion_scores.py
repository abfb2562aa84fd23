"""A run's per-item assertions, checked and stored as scores beside the scorers' (called by ``harness.scoring``).

Per output whose item has assertions, three kinds of ``Score`` rows:

- ``assertions``: the item's verdict, 1.0 pass / 0.0 fail / None when no assertion counted (all skipped, or all
  of weight 0), details ``{"score": weighted, "failed": [k, ...], "skipped": [k, ...]}``;
- ``assertion_score``: the weighted score of the counted assertions;
- ``assertion:K`` (K from 1, in the item's order: the suite's defaults first): one assertion's 1.0 / 0.0 / None
  (skipped), details ``{"type", "assertion" (as written), "reason", "measured", "weight", "metric"}`` and what
  the check added (an ``llm-rubric``'s judge, score, scale and ``method``: logprobs, parsed or failed).

And the run metrics of ``metrics.assertions.assertion_metrics``: ``pass_rate`` and ``pass_rate:*`` under the
scorer ``assertions``, ``assertion_score`` under ``assertion_score``. ``pass_rate`` is the mean of the
``assertions`` scores, so reports pair it item by item and list its flips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation
from evaltune.metrics.assertions.names import SCORE_SCORER, VERDICT_SCORER, per_assertion_scorer
from evaltune.metrics.records import Assertion, AssertionResult, Example, MetricValue


def score_assertions(session: Session, run_id: int, generations: Sequence[Generation],
                     examples: Sequence[Example]) -> list[tuple[str, MetricValue]]:
    """Check the assertions of every output whose item has some, store their scores, and return the run metrics
    as (scorer, metric) pairs; nothing is stored and nothing returned when no item has assertions."""
    from evaltune.metrics.assertions import assertion_metrics, check_assertions

    checked = [(g, e) for g, e in zip(generations, examples, strict=True) if e.assertions]
    if not checked:
        return []
    outputs = [e for _, e in checked]
    results = check_assertions(outputs)
    rows: list[dict[str, Any]] = []
    for (generation, example), found in zip(checked, results, strict=True):
        rows += _score_rows(run_id, generation, example.assertions, found)
    queries.insert_scores(session, rows)
    return [(_scorer_of(metric.name), metric) for metric in assertion_metrics(outputs, results)]


def _score_rows(run_id: int, generation: Generation, assertions: tuple[Assertion, ...],
                results: tuple[AssertionResult, ...]) -> list[dict[str, Any]]:
    from evaltune.metrics.assertions import item_verdict

    verdict = item_verdict(assertions, results)

    def row(scorer: str, value: float | None, details: dict[str, Any]) -> dict[str, Any]:
        return {"run_id": run_id, "generation_id": generation.id, "item_id": generation.item_id,
                "scorer": scorer, "value": value, "details": details}

    rows = [
        row(VERDICT_SCORER, None if verdict.passed is None else float(verdict.passed),
            {"score": verdict.score, "failed": [k + 1 for k in verdict.failed],
             "skipped": [k + 1 for k in verdict.skipped]}),
        row(SCORE_SCORER, verdict.score, {}),
    ]
    for k, (assertion, result) in enumerate(zip(assertions, results, strict=True), start=1):
        rows.append(row(per_assertion_scorer(k), None if result.passed is None else float(result.passed), {
            **result.details, "type": assertion.label, "assertion": assertion.to_dict(), "reason": result.reason,
            "measured": _json_number(result.measured), "weight": assertion.weight, "metric": assertion.metric}))
    return rows


def _json_number(value: float | None) -> float | None:
    # JSON (and PostgreSQL's JSONB) has no NaN or infinity: a measurement that is not a number is none.
    return None if value is None or not math.isfinite(value) else float(value)


def _scorer_of(metric_name: str) -> str:
    """``assertion_score`` is stored under its own scorer; ``pass_rate`` and ``pass_rate:*`` under the verdict's."""
    return SCORE_SCORER if metric_name == SCORE_SCORER else VERDICT_SCORER
