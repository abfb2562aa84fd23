"""Aggregates with 95% confidence intervals.

Binary scores (all values 0 or 1) use the Wilson score interval, which stays inside [0, 1]
and behaves at small n; other scores use a percentile bootstrap with a fixed seed so the
same scores always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000


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


def bootstrap_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return (float(data.mean()), float(data.mean())) if data.size else (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(BOOTSTRAP_RESAMPLES, data.size))
    means = data[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def mean_with_ci(values: Sequence[float]) -> Estimate:
    """The mean of ``values`` with a 95% interval (Wilson for 0/1 data, bootstrap otherwise)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(sum(values) / n)
    low, high = wilson_interval(sum(values), n) if is_binary(values) else bootstrap_interval(values)
    return Estimate(mean, low, high, n)
