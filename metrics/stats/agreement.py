"""Agreement between raters as pure functions over plain values: Krippendorff's alpha, Cohen's kappa, Spearman's
rho, and seeded bootstrap 95% intervals for alpha and rho.

Krippendorff's alpha follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": values are
paired within each unit into a coincidence matrix, and alpha = 1 - (n - 1) * sum(o_ck * d_ck) / sum(n_c * n_k * d_ck),
with d the squared difference for the level of measurement. Units with fewer than two values are not pairable
and are left out. Missing ratings need no placeholder: a unit simply has fewer values.

The intervals resample units (alpha) or pairs (rho) with replacement, ``BOOTSTRAP_RESAMPLES`` times with a fixed
seed, and take the 2.5th and 97.5th percentiles of the resamples where the statistic is defined.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from evaltune.metrics.stats.intervals import BOOTSTRAP_RESAMPLES, resample_chunks

Level = Literal["nominal", "ordinal", "interval", "ratio"]
Unit = Mapping[Hashable, int]  # value -> how many raters gave it, for one unit


@dataclass(frozen=True)
class Agreement:
    """A statistic with its bootstrap 95% interval and the count it rests on; None where undefined."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # pairable units (alpha) or pairs (rho)


def coincidences(units: Iterable[Unit]) -> dict[tuple[Hashable, Hashable], float]:
    """The coincidence matrix: o[c, k] summed over pairable units, each pair weighted 1 / (m_u - 1)."""
    matrix: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        m = sum(unit.values())
        if m < 2:
            continue
        for c, n_c in unit.items():
            for k, n_k in unit.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    matrix[c, k] += pairs / (m - 1)
    return dict(matrix)


def _num(value: Hashable) -> float:
    return float(value)  # type: ignore[arg-type]  # numeric levels: the caller promises numbers


def _ordered(level: Level, values: Iterable[Hashable]) -> list[Hashable]:
    return sorted(values, key=str) if level == "nominal" else sorted(values, key=_num)


def _distance(level: Level, marginals: Mapping[Hashable, float]) -> dict[tuple[Hashable, Hashable], float]:
    values = _ordered(level, marginals)
    table: dict[tuple[Hashable, Hashable], float] = {}
    for i, c in enumerate(values):
        for j, k in enumerate(values):
            if level == "nominal":
                d = float(c != k)
            elif level == "interval":
                d = (_num(c) - _num(k)) ** 2
            elif level == "ratio":
                total = _num(c) + _num(k)
                d = ((_num(c) - _num(k)) / total) ** 2 if total else 0.0
            else:  # ordinal: the mass of values between c and k, each end counted half
                low, high = min(i, j), max(i, j)
                between = sum(marginals[values[g]] for g in range(low, high + 1))
                d = (between - (marginals[c] + marginals[k]) / 2) ** 2
            table[c, k] = d
    return table


def krippendorff_alpha(units: Iterable[Unit], level: Level = "nominal") -> float | None:
    """Krippendorff's alpha for units given as value counts; None when it is undefined.

    Undefined: fewer than two pairable values, or every pairable value the same (no expected disagreement).
    Values must be numbers for ``ordinal``, ``interval`` and ``ratio``; any hashable for ``nominal``.
    """
    matrix = coincidences(units)
    marginals: dict[Hashable, float] = defaultdict(float)
    for (c, _k), o in matrix.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n < 2 or len(marginals) < 2:
        return None
    distance = _distance(level, marginals)
    observed = sum(o * distance[c, k] for (c, k), o in matrix.items())
    expected = sum(marginals[c] * marginals[k] * distance[c, k] for c in marginals for k in marginals)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def _alphas(per_unit: np.ndarray, weights: np.ndarray, level: Level, values: Sequence[Hashable]) -> np.ndarray:
    """Alpha for each row of ``weights`` (how often each unit is drawn), from every unit's coincidence matrix
    ``per_unit`` (units x V x V over the ordered ``values``): one matrix product instead of a loop per resample."""
    size = len(values)
    matrix = (weights @ per_unit.reshape(len(per_unit), -1)).reshape(-1, size, size)
    marginals = matrix.sum(axis=2)
    n = marginals.sum(axis=1)
    if level == "ordinal":
        running = np.cumsum(marginals, axis=1)
        index = np.arange(size)
        low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
        between = running[:, high] - running[:, low] + marginals[:, low]
        distance = (between - (marginals[:, :, None] + marginals[:, None, :]) / 2) ** 2
    else:
        fixed = _distance(level, dict.fromkeys(values, 1.0))
        distance = np.array([[fixed[c, k] for k in values] for c in values])[None, :, :]
    observed = (matrix * distance).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * distance).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1.0 - (n - 1) * observed / expected, np.nan)


def alpha_with_ci(units: Sequence[Unit], level: Level = "nominal", seed: int = 0,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> Agreement:
    """Krippendorff's alpha with a 95% interval from resampling the pairable units (seeded)."""
    pairable = [unit for unit in units if sum(unit.values()) >= 2]
    value = krippendorff_alpha(pairable, level)
    if value is None:
        return Agreement(None, None, None, len(pairable))
    values = _ordered(level, {v for unit in pairable for v in unit})
    position = {v: i for i, v in enumerate(values)}
    per_unit = np.zeros((len(pairable), len(values), len(values)))
    for u, unit in enumerate(pairable):
        for (c, k), o in coincidences([unit]).items():
            per_unit[u, position[c], position[k]] = o
    rng = np.random.default_rng(seed)
    draws = np.full(len(pairable), 1.0 / len(pairable))
    alphas = np.concatenate([_alphas(per_unit, rng.multinomial(len(pairable), draws, size=rows).astype(float),
                                     level, values)
                             for rows in resample_chunks(len(pairable), resamples)])
    return Agreement(value, *_percentiles(alphas), len(pairable))


def _percentiles(statistics: np.ndarray) -> tuple[float | None, float | None]:
    defined = statistics[np.isfinite(statistics)]
    if defined.size == 0:
        return (None, None)
    low, high = np.percentile(defined, [2.5, 97.5])
    return (float(low), float(high))


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``x`` with the same row of ``y``; NaN where either row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    spread = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (x * y).sum(axis=1) / spread
    # A constant row has zero spread; floating error can leave a tiny one instead, so compare with the scale.
    return np.where(spread > 1e-12 * max(1.0, float(np.abs(spread).max(initial=0.0))), np.clip(r, -1, 1), np.nan)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties take their average rank); None when either side is constant or n < 2."""
    if len(x) != len(y):
        raise ValueError(f"rho needs paired values: {len(x)} vs {len(y)}")
    if len(x) < 2:
        return None
    ranks = rankdata(np.array([x, y], dtype=float), axis=1)
    r = float(_pearson_rows(ranks[:1], ranks[1:])[0])
    return None if math.isnan(r) else r


def spearman_with_ci(x: Sequence[float], y: Sequence[float], seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> Agreement:
    """Spearman's rho with a 95% interval from resampling the pairs (seeded)."""
    value = spearman_rho(x, y)
    if value is None:
        return Agreement(None, None, None, len(x))
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    rhos = []
    for rows in resample_chunks(len(xs), resamples):
        picked = rng.integers(0, len(xs), size=(rows, len(xs)))
        rhos.append(_pearson_rows(rankdata(xs[picked], axis=1), rankdata(ys[picked], axis=1)))
    return Agreement(value, *_percentiles(np.concatenate(rhos)), len(xs))


def units_from_matrix(rows: Sequence[Sequence[Hashable | None]]) -> list[Counter[Hashable]]:
    """Value counts per unit from a raters x units table (None or NaN: no rating), the layout papers use."""
    width = max((len(row) for row in rows), default=0)
    units: list[Counter[Hashable]] = [Counter() for _ in range(width)]
    for row in rows:
        for u, value in enumerate(row):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            units[u][value] += 1
    return units


def cohen_kappa(pairs: Mapping[tuple[Hashable, Hashable], int], weights: str | None = None) -> float | None:
    """Cohen's kappa for two raters from counts of (rater 1 value, rater 2 value); None when undefined.

    ``weights``: None (unweighted), ``linear`` or ``quadratic`` (numeric, ordered values, e.g. Likert).
    """
    total = sum(pairs.values())
    if total == 0:
        return None
    first, second = Counter[Hashable](), Counter[Hashable]()
    for (a, b), count in pairs.items():
        first[a] += count
        second[b] += count
    values = set(first) | set(second)

    def weight(a: Hashable, b: Hashable) -> float:
        if weights is None:
            return float(a != b)
        numbers = [_num(v) for v in values]
        spread = max(numbers) - min(numbers) or 1.0
        gap = abs(_num(a) - _num(b)) / spread
        return gap if weights == "linear" else gap**2

    observed = sum(count * weight(a, b) for (a, b), count in pairs.items()) / total
    expected = sum(first[a] * second[b] * weight(a, b) for a in values for b in values) / total**2
    if expected == 0:
        return None
    return 1.0 - observed / expected


def unit_disagreement(unit: Unit, level: Level = "nominal") -> float:
    """How much one unit's raters disagree: the share of rater pairs that differ (nominal) or their mean
    absolute difference (numeric levels). 0 for a unit with fewer than two values."""
    values = [value for value, count in unit.items() for _ in range(count)]
    pairs = list(combinations(values, 2))
    if not pairs:
        return 0.0
    if level == "nominal":
        return sum(a != b for a, b in pairs) / len(pairs)
    return sum(abs(_num(a) - _num(b)) for a, b in pairs) / len(pairs)
