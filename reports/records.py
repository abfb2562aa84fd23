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
UNPAIRED_TEST = "unpaired"  # a MetricComparison.test: run-level values compared by their intervals
# 1: the JSON before it carried a version (metric "rouge", which repeated "rouge_l"); 2: versioned, no "rouge";
# 3: metric rows are the runs' RunMetric names (2 had one row per scorer: see reports.report_json).
REPORT_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class RunInfo:
    """How a run was made. A report JSON written before the settings were kept reads back with the defaults."""

    id: int
    suite: str
    suite_version: str
    model: str
    model_version_id: int
    created_at: str
    seed: int = 0
    generation: dict[str, Any] = field(default_factory=dict)  # the run's generation settings (Run.generation)
    item_limit: int | None = None  # the first N items of the suite; None: all
    code_version: str = ""  # the evaltune version that made it


@dataclass(frozen=True)
class Difference:
    """One way the two runs were made differently: the model, the suite version, a generation setting, the seed,
    the item limit or the evaltune version; ``note`` says when the difference cannot matter."""

    what: str
    baseline: str
    candidate: str
    note: str = ""


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class MetricComparison:
    """One metric (``RunMetric.name``) of both runs: their values, the delta and its test
    (``reports.metric_compare``: paired on the shared items, or ``UNPAIRED_TEST`` from the two intervals)."""

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
    """An item whose pass/fail (a 0/1 scorer) changed; ``lost`` went right → wrong.

    ``question``, ``context`` and ``references`` are the suite item's, as its author wrote them; ``prompt`` is
    what the baseline model was given (system prompt and chat template included). A report JSON written
    before ``question`` existed reads back with it empty.
    """

    key: str
    tags: list[str]
    lost: list[str]
    gained: list[str]
    impact: int  # scorers that flipped on this item
    prompt: str
    baseline_output: str
    candidate_output: str
    question: str = ""
    context: str | None = None
    references: list[str] = field(default_factory=list)


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
    ab_ruled_ties: int = 0  # of ab_ties: pairs never asked because their outputs were identical (reports.human)
    notes: list[str] = field(default_factory=list)  # ties by rule; campaigns whose items were selected


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
    differences: list[Difference] = field(default_factory=list)  # how the runs were made differently
    # "DEGRADED: ..." with the figures when the candidate's model comes from a retune job whose adapter failed the
    # collapse check (retune.collapse); "" otherwise. Reports say it first.
    degraded: str = ""
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
    data = {"degraded": data.pop("degraded"), **data}  # first, as the other formats say it
    return {"schema_version": REPORT_SCHEMA_VERSION, **json_safe(data)}
