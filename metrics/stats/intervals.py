"""Aggregates with 95% confidence intervals.

Binary scores (all values 0 or 1) use the Wilson score interval, which stays inside [0, 1]
and behaves at small n; other scores use a percentile bootstrap with a fixed seed so the
same scores always give the same interval.

Every resampling loop of ``metrics.stats`` and ``reports`` draws its resamples in chunks of about
``RESAMPLE_CELLS`` (resample, item) cells, so memory stays flat as runs grow (one 2000 x 50,000 index
array alone would be 800 MB). numpy's ``Generator`` gives the same numbers whether an array is drawn
at once or row chunk by row chunk, so chunking does not change any interval or p-value for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
RESAMPLE_CELLS = 1 << 20  # cells drawn at once: 8 MB per int64 or float array, whatever the run's size


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 or 1 the exact endpoint is 0 or 1; the formula lands a rounding error away.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def resample_chunks(n: int, resamples: int) -> Iterator[int]:
    """Row counts that split ``resamples`` resamples of ``n`` items into chunks of about ``RESAMPLE_CELLS`` cells."""
    step = max(1, RESAMPLE_CELLS // max(n, 1))
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def bootstrap_means(data: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """The means of ``resamples`` bootstrap resamples (items drawn with replacement) of the 1-D ``data``."""
    return np.concatenate([data[rng.integers(0, data.size, size=(rows, data.size))].mean(axis=1)
                           for rows in resample_chunks(data.size, resamples)])


def bootstrap_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``values`` (seeded: the same values, the same interval)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return (float(data.mean()), float(data.mean())) if data.size else (math.nan, math.nan)
    low, high = np.percentile(bootstrap_means(data, np.random.default_rng(seed)), [2.5, 97.5])
    return (float(low), float(high))


def mean_with_ci(values: Sequence[float]) -> Estimate:
    """The mean of ``values`` with a 95% interval (Wilson for 0/1 data, bootstrap otherwise)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(sum(values) / n)
    low, high = wilson_interval(sum(values), n) if is_binary(values) else bootstrap_interval(values)
    return Estimate(mean, low, high, n)
