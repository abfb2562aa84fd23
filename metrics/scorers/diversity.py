"""Lexical diversity and degeneration: distinct-n (Li et al. 2016) and repetition (Welleck et al. 2019).

Both count n-grams of lower-cased words (punctuation dropped). A small model that loops
("I am a nurse. I am a nurse. ...") has low distinct-n and high repetition; a run whose outputs
are all alike has a low distinct-n *across* outputs even when each output is varied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evaltune.metrics.records import Example, MetricValue, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.stats.intervals import mean_with_ci

REPETITION_N = 4  # Welleck et al.'s seq-rep-4: looping text repeats 4-grams, ordinary prose rarely does
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct(tokens: Sequence[str], n: int) -> float | None:
    """Unique n-grams / all n-grams; None when the text has no n-gram."""
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else None


def _distinct_aggregate(examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
    values = [r.value for r in results if r.value is not None]
    if not values:
        return []
    estimate = mean_with_ci(values)
    # Across the run: n-grams pooled over all outputs, the original definition of distinct-n.
    grams = {n: [g for e in examples for g in ngrams(words(e.output), n)] for n in (1, 2)}
    across = {f"distinct_{n}_across": len(set(g)) / len(g) if g else None for n, g in grams.items()}
    return [MetricValue("distinct_n", estimate.value, estimate.ci_low, estimate.ci_high, estimate.n, across)]


@scorer("distinct_n", family="quality", aggregate=_distinct_aggregate)
def distinct_n(example: Example) -> ScoreResult:
    """Distinct-2 of the output (unique bigrams / bigrams); distinct-1/2 across the run in the details."""
    tokens = words(example.output)
    value = distinct(tokens, 2)
    if value is None:
        return ScoreResult(None, {"reason": "fewer than two words"})
    return ScoreResult(value, {"distinct_1": distinct(tokens, 1), "distinct_2": value})


@scorer("repetition", family="quality", higher_is_better=False)
def repetition(example: Example) -> ScoreResult:
    """Share of the output's 4-grams that repeat an earlier one (seq-rep-4); 0 for outputs under 4 words."""
    tokens = words(example.output)
    rates = {f"rep_{n}": 1.0 - (distinct(tokens, n) or 1.0) for n in (2, 3, 4)}
    return ScoreResult(rates[f"rep_{REPETITION_N}"], rates)
