"""Comparing two runs on the same items: paired deltas, their intervals, tests, and FDR control.

The reports issue reads these. All are deterministic (seeded) so that a report can be
reproduced to the last digit.

- ``paired_delta``: the mean of candidate − baseline over shared items with a paired
  bootstrap 95% interval, and a p-value from McNemar's exact test for 0/1 scores or a
  sign-flip permutation test otherwise.
- ``mcnemar_exact``, ``sign_flip_permutation``: the tests on their own. Both hold at any size:
  McNemar's binomial tail comes from scipy (which never forms ``2**n``, so 1,024 or more discordant
  pairs are fine), and sign flips and bootstrap resamples are drawn in chunks
  (``intervals.resample_chunks``), so memory does not grow with resamples x items.
- ``benjamini_hochberg``: adjusted p-values across metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from evaltune.metrics.stats.intervals import bootstrap_means, is_binary, resample_chunks

PERMUTATIONS = 10_000


@dataclass(frozen=True)
class PairedDelta:
    delta: float  # mean(candidate) - mean(baseline)
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "mcnemar" or "permutation"
    n: int


def paired_delta(baseline: Sequence[float], candidate: Sequence[float], seed: int = 0) -> PairedDelta:
    """The paired difference of two runs' scores on the same items (same order), with CI and p-value."""
    if len(baseline) != len(candidate):
        raise ValueError(f"paired scores need the same items: {len(baseline)} vs {len(candidate)} values")
    n = len(baseline)
    if n == 0:
        return PairedDelta(math.nan, math.nan, math.nan, math.nan, "none", 0)
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    low, high = _bootstrap_mean_interval(diffs, seed)
    if is_binary(baseline) and is_binary(candidate):
        gained = int(np.sum(diffs > 0))
        lost = int(np.sum(diffs < 0))
        return PairedDelta(float(diffs.mean()), low, high, mcnemar_exact(gained, lost), "mcnemar", n)
    return PairedDelta(float(diffs.mean()), low, high, sign_flip_permutation(diffs, seed), "permutation", n)


def _bootstrap_mean_interval(diffs: np.ndarray, seed: int) -> tuple[float, float]:
    if diffs.size < 2 or np.all(diffs == diffs[0]):
        return (float(diffs.mean()), float(diffs.mean()))
    low, high = np.percentile(bootstrap_means(diffs, np.random.default_rng(seed)), [2.5, 97.5])
    return (float(low), float(high))


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: a binomial test of ``gained`` of them at 1/2."""
    discordant = gained + lost
    if discordant == 0:
        return 1.0
    return float(binomtest(gained, discordant, 0.5, alternative="two-sided").pvalue)


def sign_flip_permutation(diffs: Sequence[float] | np.ndarray, seed: int = 0,
                          permutations: int = PERMUTATIONS) -> float:
    """Two-sided p-value that the paired differences are centred on zero, by random sign flips.

    Exact (all 2^n flips) when n <= 16; otherwise ``permutations`` seeded flips, counting the
    observed statistic itself so the p-value is never zero.
    """
    data = np.asarray(diffs, dtype=float)
    if data.size == 0 or np.all(data == 0):
        return 1.0
    observed = abs(data.sum())
    if data.size <= 16:
        signs = ((np.arange(2**data.size)[:, None] >> np.arange(data.size)) & 1) * 2 - 1
        sums = np.abs(signs @ data)
        return float(np.mean(sums >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    at_least = 0
    for rows in resample_chunks(data.size, permutations):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(rows, data.size))
        at_least += int(np.sum(np.abs(signs @ data) >= observed - 1e-12))
    return float((at_least + 1) / (permutations + 1))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order; NaN stays NaN."""
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    m = len(indexed)
    running = 1.0
    for rank, (p, i) in reversed(list(enumerate(sorted(indexed), start=1))):
        running = min(running, p * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted
