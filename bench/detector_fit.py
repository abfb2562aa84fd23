"""The statistics of ``bench/validate_hallucination.py``: balanced accuracy, AUROC, passage-clustered bootstrap
intervals, and the weighted logistic fit that chooses the detector's constants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

RESAMPLES = 1000


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(a hallucinated output scores above a faithful one), ties counting half."""
    y, s = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    positives, negatives = s[y], s[~y]
    if not len(positives) or not len(negatives):
        return float("nan")
    ranks = rankdata(np.concatenate([positives, negatives]))  # average ranks over ties, so equal scores count half
    positive_ranks = ranks[: len(positives)].sum()
    return float((positive_ranks - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives)))


def balanced_accuracy(labels: ArrayLike, flags: ArrayLike) -> float:
    """Mean of the hit rate on hallucinated outputs and the pass rate on faithful ones (nan without both)."""
    y, f = np.asarray(labels, dtype=bool), np.asarray(flags, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    return float(((f[y]).mean() + (~f[~y]).mean()) / 2)


@dataclass(frozen=True)
class Figure:
    """One measure with its 95% interval (bootstrap over passages: outputs of one passage move together)."""

    value: float
    low: float
    high: float

    def text(self) -> str:
        if np.isnan(self.value):
            return "n/a"
        if np.isnan(self.low):
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float | None]:
        return {k: None if np.isnan(v) else round(float(v), 4)
                for k, v in (("value", self.value), ("ci_low", self.low), ("ci_high", self.high))}


def clustered_figures(labels: Sequence[int], scores: Sequence[float], flags: Sequence[bool],
                      clusters: Sequence[str], seed: int = 0) -> tuple[Figure, Figure]:
    """(balanced accuracy of the flags, AUROC of the scores), each with a passage-clustered bootstrap 95% CI."""
    y, s, f = np.asarray(labels), np.asarray(scores, dtype=float), np.asarray(flags, dtype=bool)
    groups: dict[str, list[int]] = {}
    for i, cluster in enumerate(clusters):
        groups.setdefault(cluster, []).append(i)
    members = [np.array(g) for g in groups.values()]
    rng = np.random.default_rng(seed)
    baccs, aurocs = [], []
    for _ in range(RESAMPLES if len(members) > 1 else 0):
        picked = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        baccs.append(balanced_accuracy(y[picked], f[picked]))
        aurocs.append(auroc(y[picked], s[picked]))
    return (_figure(balanced_accuracy(y, f), baccs), _figure(auroc(y, s), aurocs))


def _figure(value: float, resampled: list[float]) -> Figure:
    kept = np.array([v for v in resampled if not np.isnan(v)])
    if np.isnan(value) or not len(kept):
        return Figure(value, float("nan"), float("nan"))
    return Figure(value, float(np.quantile(kept, 0.025)), float(np.quantile(kept, 0.975)))


def balancing_weights(labels: ArrayLike, groups: Sequence[str]) -> np.ndarray:
    """Weights that give every group (data set) the same total, split equally between its two labels:
    a fit with them puts its 0.5 cut where balanced accuracy, not the majority label, is served."""
    y, g = np.asarray(labels), np.asarray(groups)
    weights = np.zeros(len(y))
    for group in np.unique(g):
        for label in (0, 1):
            mask = (g == group) & (y == label)
            if mask.any():
                weights[mask] = 1.0 / mask.sum()
    return weights * len(y) / weights.sum()


def fit_logistic(features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None,
                 l2: float = 1.0) -> np.ndarray:
    """[bias, weights...] of a weighted, L2-regularised logistic regression (bias unpenalised), by Newton steps."""
    x = np.column_stack([np.ones(len(features)), features])
    sample = np.ones(len(labels)) if weights is None else weights
    w = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (sample * (p - labels)) + penalty @ w
        hessian = x.T @ (x * (sample * p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w
