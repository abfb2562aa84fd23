"""Statistics for counterfactual gaps: how far apart the values of one attribute score.

Data are rows (group, value, score): a *group* is a set of prompts that differ only in a
demographic term, its *values* (e.g. "female", "male") are the variants. Groups need not hold
every value (one may pit Black against white, another Asian against Hispanic), so a raw mean per
value would mix prompt effects with value effects. Each value's *effect* is therefore measured
inside its groups: a variant's mean minus the mean of its group's variant means, averaged over
the groups holding that value. The *gap* is the largest effect minus the smallest. When every
group holds every value, the gap equals the difference between the largest and smallest raw
value means.

Uncertainty: a percentile bootstrap that resamples whole groups (the independent unit), and a
permutation test that shuffles value labels among the rows of each group (under "the value has
no effect" every such relabelling is equally likely). Both are seeded, so the same scores always
give the same interval and p-value. A largest-minus-smallest gap is never negative and grows with
noise (more values, fewer groups), so an interval that excludes 0 is no evidence of bias: the
p-value, which compares the gap with gaps under shuffled labels, is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evaltune.metrics.stats.intervals import resample_chunks

PERMUTATIONS = 2000
RESAMPLES = 2000
_TOLERANCE = 1e-12  # ties with the observed gap count as "at least as large"


@dataclass(frozen=True)
class GapResult:
    """The largest gap between values, with a 95% bootstrap interval and a permutation p-value."""

    gap: float
    ci_low: float
    ci_high: float
    p_value: float
    n_groups: int
    n_outputs: int
    value_means: dict[str, float] = field(default_factory=dict)
    value_effects: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Cells:
    """Rows sorted by group, encoded as integers, with per-(group, value) counts."""

    groups: np.ndarray  # (n,) int, ascending
    values: np.ndarray  # (n,) int
    scores: np.ndarray  # (n,) float
    counts: np.ndarray  # (G, V)
    value_names: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.counts.shape[0]), int(self.counts.shape[1]))

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cell score sums for one or more labellings ``values`` of shape (..., n)."""
        n_groups, n_values = self.shape
        lead = values.shape[:-1]
        batch = int(np.prod(lead)) if lead else 1
        offsets = np.arange(batch).reshape(*lead, 1) * (n_groups * n_values) if lead else 0
        flat = offsets + self.groups * n_values + values
        weights = np.broadcast_to(self.scores, values.shape)
        sums = np.bincount(flat.ravel(), weights=weights.ravel(), minlength=batch * n_groups * n_values)
        return sums.reshape(*lead, n_groups, n_values)


def value_gap(groups: Sequence[str], values: Sequence[str], scores: Sequence[float], *,
              permutations: int = PERMUTATIONS, resamples: int = RESAMPLES, seed: int = 0) -> GapResult:
    """The largest between-value gap of ``scores`` with its interval and p-value.

    Groups holding a single value say nothing about gaps and are left out. With fewer than two
    values left the gap is NaN. ``n_groups`` (the resampling unit) counts the groups used.
    """
    cells = _encode(groups, values, scores)
    if cells is None:
        return GapResult(math.nan, math.nan, math.nan, math.nan, 0, 0)
    deviations, present = _deviations(cells.sums(cells.values), cells.counts)
    effects = _effects(deviations, present)
    observed = float(effects.max() - effects.min())
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_bootstrap_gaps(deviations, present, resamples, rng))
    p_value = _permutation_p_value(cells, observed, permutations, rng)
    cell_means = np.where(present, cells.sums(cells.values) / np.maximum(cells.counts, 1), 0.0)
    raw_means = cell_means.sum(0) / present.sum(0)
    return GapResult(
        observed, low, high, p_value, cells.shape[0], int(cells.scores.size),
        value_means={name: float(m) for name, m in zip(cells.value_names, raw_means, strict=True)},
        value_effects={name: float(e) for name, e in zip(cells.value_names, effects, strict=True)},
    )


def _permutation_p_value(cells: _Cells, observed: float, permutations: int, rng: np.random.Generator) -> float:
    """Share of within-group relabellings whose gap is at least ``observed`` (with the +1 correction)."""
    at_least = 0
    for rows in resample_chunks(cells.groups.size, permutations):
        keys = rng.random((rows, cells.groups.size))
        # Sorting by (group, random key) shuffles row indices inside each group's block.
        order = np.lexsort((keys, np.broadcast_to(cells.groups, keys.shape)), axis=-1)
        deviations, present = _deviations(cells.sums(cells.values[order]), cells.counts)
        gaps = _gap_of(_effects(deviations, present))
        at_least += int(np.sum(gaps >= observed - _TOLERANCE))
    return (1 + at_least) / (1 + permutations)


def _bootstrap_gaps(deviations: np.ndarray, present: np.ndarray, resamples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Gaps over ``resamples`` resamples of whole groups; resamples that keep fewer than two values are dropped."""
    n_groups = deviations.shape[0]
    draws = [_resampled_gaps(deviations, present, rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups),
                                                                  size=rows))
             for rows in resample_chunks(n_groups, resamples)]
    return np.concatenate(draws)


def _resampled_gaps(deviations: np.ndarray, present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The gap of each resample, given how often it draws each group (``weights``: resamples x groups)."""
    holding = weights @ present.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        effects = (weights @ deviations) / holding
    effects[holding == 0] = np.nan
    enough = np.sum(~np.isnan(effects), axis=1) >= 2
    return np.nanmax(effects[enough], axis=1) - np.nanmin(effects[enough], axis=1)


def _encode(groups: Sequence[str], values: Sequence[str], scores: Sequence[float]) -> _Cells | None:
    per_group: dict[str, set[str]] = {}
    for group, value in zip(groups, values, strict=True):
        per_group.setdefault(group, set()).add(value)
    keep = [i for i, group in enumerate(groups) if len(per_group[group]) >= 2]
    if not keep:
        return None
    group_names = sorted({groups[i] for i in keep})
    value_names = sorted({values[i] for i in keep})
    g_index = {name: i for i, name in enumerate(group_names)}
    v_index = {name: i for i, name in enumerate(value_names)}
    group_ids = np.array([g_index[groups[i]] for i in keep])
    order = np.argsort(group_ids, kind="stable")
    value_ids = np.array([v_index[values[i]] for i in keep])[order]
    sorted_scores = np.asarray([scores[i] for i in keep], dtype=float)[order]
    counts = np.zeros((len(group_names), len(value_names)))
    np.add.at(counts, (group_ids[order], value_ids), 1)
    return _Cells(group_ids[order], value_ids, sorted_scores, counts, value_names)


def _deviations(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's mean minus its group's mean of cell means (0 where the group lacks the value)."""
    present = counts > 0
    means = np.where(present, sums / np.maximum(counts, 1), 0.0)
    group_mean = means.sum(-1, keepdims=True) / present.sum(-1, keepdims=True)
    return np.where(present, means - group_mean, 0.0), present


def _effects(deviations: np.ndarray, present: np.ndarray) -> np.ndarray:
    return deviations.sum(-2) / present.sum(-2)


def _gap_of(effects: np.ndarray) -> np.ndarray:
    return effects.max(-1) - effects.min(-1)


def _percentiles(gaps: np.ndarray) -> tuple[float, float]:
    if gaps.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return (float(low), float(high))
