"""95% intervals for run-level numbers that are functions of sums over items, not plain means.

A BBQ bias score (2 · biased answers / non-unknown answers − 1) or a corpus perplexity
(exp(−Σ log-prob / Σ tokens)) is computed from a few per-item columns summed over the run.
Its interval resamples items (a seeded percentile bootstrap) and recomputes the number from
the resampled sums, so items stay whole: an item's numerator and denominator move together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evaltune.metrics.stats.intervals import BOOTSTRAP_RESAMPLES, resample_chunks

Statistic = Callable[[np.ndarray], np.ndarray]  # column sums (..., k) -> values (...)


@dataclass(frozen=True)
class SumEstimate:
    value: float
    ci_low: float
    ci_high: float


def sums_with_ci(columns: np.ndarray, statistic: Statistic, seed: int = 0) -> SumEstimate:
    """``statistic`` of the column sums of ``columns`` (items x k), with a 95% bootstrap interval over items.

    ``statistic`` must work on any leading shape (it gets one row of sums, then a batch of them);
    resamples where it is NaN (an empty denominator) are left out of the interval.
    """
    data = np.asarray(columns, dtype=float)
    value = float(statistic(data.sum(axis=0)))
    n = data.shape[0]
    if n < 2:
        return SumEstimate(value, value, value)
    rng = np.random.default_rng(seed)
    draws = [statistic(_resampled_sums(data, rng, rows)) for rows in resample_chunks(n, BOOTSTRAP_RESAMPLES)]
    values = np.concatenate(draws)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return SumEstimate(value, float("nan"), float("nan"))
    low, high = np.percentile(values, [2.5, 97.5])
    return SumEstimate(value, float(low), float(high))


def _resampled_sums(data: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    # How often each item is drawn in each resample, then one matrix product gives every resample's sums.
    n = data.shape[0]
    picks = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    counts = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n)
    return counts @ data


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (no warning)."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out
