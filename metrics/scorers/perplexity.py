"""Perplexity of the reference answers under the evaluated model, given the item's prompt.

The runner computes log P(reference | rendered prompt) for every reference of an item (on its first
sample) when a scorer that needs references and log-probs is asked for, and stores each one's token
count. An item's perplexity is exp(−Σ log-prob / Σ tokens) over its references; the run's is the same
over all items' references pooled (a token-weighted corpus perplexity, not a mean of item perplexities),
with a bootstrap interval over items. Lower is better: the model finds the references less surprising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evaltune.metrics.records import NOT_APPLICABLE, Example, MetricValue, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.stats.ratios import safe_ratio, sums_with_ci


def _corpus_perplexity(sums: np.ndarray) -> np.ndarray:
    # Columns: summed log-prob, summed tokens.
    return np.exp(-safe_ratio(sums[..., 0], sums[..., 1]))


def _aggregate(_examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
    scored = [r for r in results if r.value is not None]
    if not scored:
        return []
    columns = np.array([[r.details["logprob"], r.details["tokens"]] for r in scored], dtype=float)
    estimate = sums_with_ci(columns, _corpus_perplexity)
    details = {"tokens": int(columns[:, 1].sum()), "mean_item_perplexity": float(np.mean([r.value for r in scored]))}
    return [MetricValue("perplexity", estimate.value, estimate.ci_low, estimate.ci_high, len(scored), details)]


@scorer("perplexity", family="quality", higher_is_better=False, needs=("reference", "logprobs"), aggregate=_aggregate)
def perplexity(example: Example) -> ScoreResult:
    """Perplexity of the references given the prompt, exp(-sum log-prob / sum tokens); lower is better."""
    tokens = sum(example.reference_tokens)
    if not example.reference_logprobs or tokens == 0:
        return NOT_APPLICABLE
    logprob = float(sum(example.reference_logprobs))
    return ScoreResult(math.exp(-logprob / tokens),
                       {"logprob": logprob, "tokens": tokens, "references": len(example.reference_logprobs)})
