"""Each metric of two runs side by side, under the name the run summary printed (``RunMetric.name``).

A report row is a run-level metric, never a scorer's raw per-output score: ``cf_length_gap`` scores each
output's length in words, but its metrics are the gaps per attribute (``cf_length_gap:gender``), and a row
named after the scorer would show a mean length under a gap's name. Rows come in two kinds:

- **Paired** (most metrics): a metric that is the plain mean of its scorer's per-output scores in both runs
  (``exact_match``, ``grounded_hallucination``, ``crows_pairs_pct_stereotype``) is compared item by item on
  the shared items: the paired delta with a bootstrap interval, McNemar's test for 0/1 scores and a sign-flip
  permutation test otherwise. When every output the run scored is compared (all items shared, one sample
  each), each run's value and interval are the stored ones, digit for digit what its summary printed.
- **Unpaired** (``test == "unpaired"``): any other metric (a gap per attribute, a rate above a threshold such as
  ``grounded_hallucination_rate``, a corpus-level perplexity) has no per-item score of its own meaning, so the
  two runs' stored values are compared: delta = candidate − baseline, and a normal approximation that takes each
  run's 95% half-width / 1.96 as its standard error, for the interval and the two-sided p-value.

Both kinds share one Benjamini–Hochberg correction and the same verdict rule.
"""

from __future__ import annotations

import math

from evaltune.db.evaluation import RunMetric
from evaltune.metrics.stats.intervals import Z95, mean_with_ci
from evaltune.metrics.stats.paired import PairedDelta, benjamini_hochberg, paired_delta
from evaltune.reports.load import RunData
from evaltune.reports.records import ALPHA, UNPAIRED_TEST, Interval, MetricComparison

Paired = dict[str, tuple[list[str], list[float], list[float]]]  # metric -> (item keys, baseline, candidate)


def compare_metrics(base: RunData, cand: RunData, shared: list[str]) -> tuple[list[MetricComparison], Paired]:
    """One row per metric both runs have, by family and name; and the per-item values of the paired rows."""
    b_metrics = {m.name: m for m in base.metrics}
    c_metrics = {m.name: m for m in cand.metrics}
    rows: list[tuple[RunMetric, Interval, Interval, PairedDelta]] = []
    values: Paired = {}
    for name in sorted(set(b_metrics) & set(c_metrics)):
        bm, cm = b_metrics[name], c_metrics[name]
        keys = _paired_keys(base, bm, cand, cm, shared)
        if keys:
            b = [base.scores[bm.scorer][k] for k in keys]
            c = [cand.scores[cm.scorer][k] for k in keys]
            values[name] = (keys, b, c)
            rows.append((cm, _item_interval(bm, b), _item_interval(cm, c), paired_delta(b, c)))
        else:
            rows.append((cm, _stored(bm), _stored(cm), unpaired_delta(_stored(bm), _stored(cm))))
    q_values = benjamini_hochberg([row[3].p_value for row in rows])
    comparisons = [
        MetricComparison(m.name, m.family, m.higher_is_better, b, c, d.delta, d.ci_low, d.ci_high, d.p_value,
                         d.test, q, verdict(d.delta, q, m.higher_is_better))
        for (m, b, c, d), q in zip(rows, q_values, strict=True)
    ]
    comparisons.sort(key=lambda m: (m.family, m.name))
    return comparisons, values


def is_item_mean(run: RunData, metric: RunMetric) -> bool:
    """True when ``metric`` is the plain mean of its scorer's scores over every output of ``run`` (as the
    default aggregate makes it): the same n and the same value. A per-attribute metric (``scorer:attribute``)
    covers only some items, so it never is, even when its value happens to equal the mean (all zeros)."""
    totals = run.totals.get(metric.scorer)
    if ":" in metric.name or totals is None or totals.n == 0 or totals.n != metric.n:
        return False
    return math.isclose(totals.total / totals.n, metric.value, rel_tol=1e-9, abs_tol=1e-12)


def unpaired_delta(baseline: Interval, candidate: Interval) -> PairedDelta:
    """candidate − baseline of two run-level values, with a 95% interval and a two-sided p-value from a normal
    approximation in which each run's standard error is its 95% half-width / 1.96."""
    delta = candidate.value - baseline.value
    se = math.hypot((baseline.ci_high - baseline.ci_low) / (2 * Z95),
                    (candidate.ci_high - candidate.ci_low) / (2 * Z95))
    n = min(baseline.n, candidate.n)
    if math.isnan(delta) or math.isnan(se):
        return PairedDelta(delta, math.nan, math.nan, math.nan, UNPAIRED_TEST, n)
    if se == 0:  # both intervals are points: no spread to test against (equal values: nothing changed)
        return PairedDelta(delta, delta, delta, 1.0 if delta == 0 else math.nan, UNPAIRED_TEST, n)
    p_value = math.erfc(abs(delta) / se / math.sqrt(2))
    return PairedDelta(delta, delta - Z95 * se, delta + Z95 * se, p_value, UNPAIRED_TEST, n)


def verdict(delta: float, q_value: float, higher_is_better: bool) -> str:
    """better / worse by q < ALPHA and the metric's direction; otherwise no significant change."""
    if math.isnan(q_value) or q_value >= ALPHA or delta == 0:
        return "no significant change"
    return "better" if (delta > 0) == higher_is_better else "worse"


def _paired_keys(base: RunData, bm: RunMetric, cand: RunData, cm: RunMetric, shared: list[str]) -> list[str]:
    """The shared items both runs scored, when the metric is an item mean of one scorer in both; else none."""
    if bm.scorer != cm.scorer or not (is_item_mean(base, bm) and is_item_mean(cand, cm)):
        return []
    b_scores, c_scores = base.scores[bm.scorer], cand.scores[cm.scorer]
    return [k for k in shared if k in b_scores and k in c_scores]


def _item_interval(metric: RunMetric, values: list[float]) -> Interval:
    # As many shared items as the run scored outputs: every output is compared, one per item, so the run's
    # own stored number is the one to show. On fewer items (or several samples each) it is recomputed there.
    if len(values) == metric.n:
        return _stored(metric)
    estimate = mean_with_ci(values)
    return Interval(estimate.value, estimate.ci_low, estimate.ci_high, estimate.n)


def _stored(metric: RunMetric) -> Interval:
    return Interval(metric.value, metric.ci_low, metric.ci_high, metric.n)
