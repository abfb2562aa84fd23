"""``check_assertions``: every assertion of every output, each type judged in one batch across the outputs (so the
embedding model, the scorers and the judge each run once per scoring pass)."""

from __future__ import annotations

from collections.abc import Sequence

from evaltune.metrics.assertions import model_checks, semantic_checks, structure_checks
from evaltune.metrics.assertions.outcome import BatchCheck, per_item
from evaltune.metrics.assertions.text_checks import ITEM_CHECKS
from evaltune.metrics.records import Assertion, AssertionResult, Example

CHECKS: dict[str, BatchCheck] = {
    **{name: per_item(check) for name, check in ITEM_CHECKS.items()},
    "is-json": per_item(structure_checks.is_json),
    "contains-json": per_item(structure_checks.contains_json),
    "similar": semantic_checks.similar,
    "rouge-n": semantic_checks.rouge_n,
    "bleu": semantic_checks.bleu,
    "scorer": model_checks.scorer,
    "llm-rubric": model_checks.llm_rubric,
}


def check_assertions(examples: Sequence[Example]) -> list[tuple[AssertionResult, ...]]:
    """One tuple of results per example, aligned with ``example.assertions``."""
    by_type: dict[str, list[tuple[int, int]]] = {}  # type -> (example index, assertion index)
    for i, example in enumerate(examples):
        for k, assertion in enumerate(example.assertions):
            by_type.setdefault(assertion.type, []).append((i, k))
    found: dict[tuple[int, int], AssertionResult] = {}
    for type_name, places in by_type.items():
        pairs: list[tuple[Assertion, Example]] = [(examples[i].assertions[k], examples[i]) for i, k in places]
        found.update(zip(places, CHECKS[type_name](pairs), strict=True))
    return [tuple(found[(i, k)] for k in range(len(example.assertions))) for i, example in enumerate(examples)]
