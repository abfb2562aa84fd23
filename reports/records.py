"""The comparison report as typed values; ``report_to_dict`` gives the JSON with every number.

Every part of the system that shows a comparison (the CLI's formats, the gate, the app) reads these
dataclasses, so the numbers agree everywhere. NaN (no data) becomes ``null`` in JSON. The JSON carries
``schema_version`` (``REPORT_SCHEMA_VERSION``); ``reports.report_json.load_report_json`` reads it back,
older versions included.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("better", "worse", "no significant change")
ALPHA = 0.05
# 1: the JSON before it carried a version (metric "rouge", which repeated "rouge_l"); 2: versioned, no "rouge".
REPORT_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RunInfo:
    id: int
    suite: str
    suite_version: str
    model: str
    model_version_id: int
    created_at: str


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class MetricComparison:
    """One scorer on the shared items: both runs' means, the paired delta and its test."""

    name: str
    family: str
    higher_is_better: bool
    baseline: Interval
    candidate: Interval
    delta: float  # candidate - baseline, on items both runs scored
    delta_ci_low: float
    delta_ci_high: float
    p_value: float
    test: str
    q_value: float  # Benjamini–Hochberg across the report's metrics
    verdict: str  # one of VERDICTS


@dataclass(frozen=True)
class FlippedItem:
    """An item whose pass/fail (a 0/1 scorer) changed; ``lost`` went right → wrong."""

    key: str
    tags: list[str]
    lost: list[str]
    gained: list[str]
    impact: int  # scorers that flipped on this item
    prompt: str
    baseline_output: str
    candidate_output: str


@dataclass(frozen=True)
class TagBreakdown:
    tag: str
    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float


@dataclass(frozen=True)
class BiasGap:
    """A counterfactual gap (RunMetric ``scorer:attribute``) in each run; smaller is fairer."""

    metric: str
    attribute: str
    baseline: Interval | None
    candidate: Interval | None
    baseline_p: float | None
    candidate_p: float | None
    change: float


@dataclass(frozen=True)
class Strength:
    model: str
    strength: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class HumanRatings:
    likert_baseline: Interval
    likert_candidate: Interval
    ab_wins: int  # candidate preferred
    ab_losses: int
    ab_ties: int
    ab_both_bad: int
    ab_win_rate: float  # wins / (wins + losses)
    ab_ci_low: float
    ab_ci_high: float
    bradley_terry: list[Strength] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    baseline: RunInfo
    candidate: RunInfo
    shared_items: int
    baseline_only: int
    candidate_only: int
    verdict: str
    metrics: list[MetricComparison]
    flipped: list[FlippedItem]
    tags: list[TagBreakdown]
    bias_gaps: list[BiasGap]
    human: HumanRatings | None
    lineage: list[dict[str, Any]]
    # per metric, per run: the per-item values (for distribution plots); left out of JSON
    distributions: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict, repr=False)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def report_to_dict(report: Report) -> dict[str, Any]:
    """Every number of the report as plain JSON types (NaN → None), with its ``schema_version``.

    Distributions (the per-item values behind the plots) are left out.
    """
    data = asdict(report)
    data.pop("distributions", None)
    return {"schema_version": REPORT_SCHEMA_VERSION, **json_safe(data)}
