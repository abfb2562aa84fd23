"""Baseline vs candidate on the items both runs share: paired deltas, verdicts, flips, tags, bias gaps.

Items are matched by their suite item key, so two versions of a suite compare on the keys they share.
Metrics are the runs' own (``RunMetric.name``, the names the run summary prints), compared by
``reports.metric_compare``; flips, tags and distributions use the per-item values of its paired rows.
"""

from __future__ import annotations

import math

from sqlalchemy.orm import Session

from evaltune.metrics.stats.intervals import is_binary
from evaltune.reports.differences import differences
from evaltune.reports.human import human_ratings
from evaltune.reports.load import ReportError, RunData, SuiteItems, degraded_line, load_lineage, load_run
from evaltune.reports.metric_compare import Paired, compare_metrics
from evaltune.reports.records import BiasGap, FlippedItem, Interval, MetricComparison, Report, TagBreakdown


def build_report(session: Session, baseline_id: int, candidate_id: int) -> Report:
    """The full comparison of two stored runs, with how they were made differently (``reports.differences``).

    Raises ``ReportError`` for an unknown run or runs that share no scored item.
    """
    suite_items: SuiteItems = {}  # read once when both runs are of one suite version
    base, cand = load_run(session, baseline_id, suite_items), load_run(session, candidate_id, suite_items)
    shared = sorted(set(base.items) & set(cand.items))
    if not shared:
        raise ReportError(f"runs {baseline_id} and {candidate_id} share no items (different suites?)")
    metrics, values = compare_metrics(base, cand, shared)
    lineage = load_lineage(session, cand.info.model_version_id)
    has_parent = len(lineage) > 1
    return Report(
        baseline=base.info, candidate=cand.info, shared_items=len(shared),
        baseline_only=len(base.items) - len(shared), candidate_only=len(cand.items) - len(shared),
        verdict=_overall(metrics), metrics=metrics, flipped=_flipped(base, cand, metrics, values),
        tags=_tags(base, values), bias_gaps=_bias_gaps(base, cand),
        human=human_ratings(session, base, cand, shared),
        lineage=lineage if has_parent else [],
        differences=differences(base.info, cand.info), degraded=degraded_line(lineage),
        distributions={name: (b, c) for name, (_keys, b, c) in values.items()},
    )


def _overall(metrics: list[MetricComparison]) -> str:
    verdicts = {m.verdict for m in metrics}
    if "worse" in verdicts:
        return "worse"
    return "better" if "better" in verdicts else "no significant change"


def _flipped(base: RunData, cand: RunData, metrics: list[MetricComparison], values: Paired) -> list[FlippedItem]:
    """Items where a 0/1 scorer changed, most scorers flipped first, regressions before gains."""
    lost: dict[str, list[str]] = {}
    gained: dict[str, list[str]] = {}
    for metric in metrics:
        if metric.name not in values:  # an unpaired row has no per-item values
            continue
        keys, b_values, c_values = values[metric.name]
        if not (is_binary(b_values) and is_binary(c_values)):
            continue
        for key, b_value, c_value in zip(keys, b_values, c_values, strict=True):
            if c_value == b_value:
                continue
            # "Right" is 1 for higher-is-better scorers and 0 for lower-is-better ones (a hallucination flag).
            got_worse = (c_value < b_value) == metric.higher_is_better
            (lost if got_worse else gained).setdefault(key, []).append(metric.name)
    flips = []
    for key in sorted(set(lost) | set(gained)):
        item_b, item_c = base.items[key], cand.items[key]
        down, up = lost.get(key, []), gained.get(key, [])
        flips.append(FlippedItem(key, item_b["tags"], down, up, len(down) + len(up), item_b["prompt"],
                                 item_b["output"], item_c["output"], question=item_b["question"],
                                 context=item_b["context"], references=item_b["references"]))
    flips.sort(key=lambda f: (-f.impact, -len(f.lost), f.key))
    return flips


def _tags(base: RunData, values: Paired) -> list[TagBreakdown]:
    """Per tag and metric: n, both means and the delta, on the shared items carrying the tag."""
    rows = []
    positions: dict[tuple[str, ...], dict[str, list[int]]] = {}  # metrics mostly share their items: group once
    for scorer, (keys, b_values, c_values) in sorted(values.items()):
        per_tag = positions.get(tuple(keys))
        if per_tag is None:
            per_tag = positions[tuple(keys)] = _tag_positions(base, keys)
        for tag, where in sorted(per_tag.items()):
            b_mean = sum(map(b_values.__getitem__, where)) / len(where)
            c_mean = sum(map(c_values.__getitem__, where)) / len(where)
            rows.append(TagBreakdown(tag, scorer, len(where), b_mean, c_mean, c_mean - b_mean))
    return rows


def _tag_positions(base: RunData, keys: list[str]) -> dict[str, list[int]]:
    """Each tag's positions in ``keys``, in order."""
    per_tag: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        for tag in base.items[key]["tags"]:
            per_tag.setdefault(tag, []).append(i)
    return per_tag


def _bias_gaps(base: RunData, cand: RunData) -> list[BiasGap]:
    """RunMetrics named ``scorer:attribute`` of the bias family, side by side."""
    def gaps(run: RunData) -> dict[str, tuple[Interval, float | None]]:
        return {m.name: (Interval(m.value, m.ci_low, m.ci_high, m.n), (m.details or {}).get("p_value"))
                for m in run.metrics if m.family == "bias" and ":" in m.name}
    b_gaps, c_gaps = gaps(base), gaps(cand)
    rows = []
    for name in sorted(set(b_gaps) | set(c_gaps)):
        b, c = b_gaps.get(name), c_gaps.get(name)
        change = (c[0].value - b[0].value) if b and c else math.nan
        rows.append(BiasGap(name.split(":", 1)[0], name.split(":", 1)[1], b[0] if b else None,
                            c[0] if c else None, b[1] if b else None, c[1] if c else None, change))
    return rows
