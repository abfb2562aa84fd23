"""Regression gates: a YAML file of rules per metric, checked against a comparison report.

    gates:
      exact_match:
        min: 0.6                                   # candidate value must be >= 0.6
        no_significant_regression: {min_effect: 0.02}
      grounded_hallucination_rate:
        max: 0.1

A rule names a metric as the run summary, ``runs show`` and the report name it (``RunMetric.name``):
``exact_match``, ``grounded_hallucination_rate``, a gap per attribute (``cf_sentiment_gap:gender``), or a
human-rating figure (``human:likert``, ``human:win_rate``). ``min`` and ``max`` bound the candidate's value,
the number its summary printed. A rule whose metric is missing fails: a gate never passes because it could
not be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evaltune import textfiles
from evaltune.reports.records import ALPHA, MetricComparison, Report
from evaltune.suggestions import did_you_mean

RULES = ("min", "max", "no_significant_regression")
REGRESSION_FIELDS = ("min_effect", "alpha")


class GateFileError(ValueError):
    """The gate file cannot be used; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Rule:
    metric: str
    kind: str  # one of RULES
    threshold: float  # the bound, or the minimum effect for no_significant_regression
    alpha: float = ALPHA


@dataclass(frozen=True)
class GateResult:
    rule: Rule
    passed: bool
    actual: float | None
    message: str


@dataclass(frozen=True)
class GateOutcome:
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def _read_yaml(path: Path) -> Any:
    try:
        return textfiles.read_yaml(path)
    except textfiles.FileProblem as problem:
        raise GateFileError(str(problem)) from None


def load_gates(path: str | Path) -> list[Rule]:
    """The rules of a gate file; raises ``GateFileError`` naming file, rule and field on any problem."""
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict) and "gates" in data:
        extra = sorted(str(key) for key in data if key != "gates")
        if extra:
            raise GateFileError(f"{path}: unknown top-level key '{extra[0]}'; put every rule under 'gates:'")
        data = data["gates"]
    if data is None:
        raise GateFileError(f"{path}: the gate file is empty; write 'gates:' with a metric and its rules")
    if not isinstance(data, dict) or not data:
        raise GateFileError(f"{path}: expected a mapping 'gates:' of metric name -> rules")
    return [rule for metric, rules in data.items() for rule in _parse_metric(path, str(metric), rules)]


def _parse_metric(path: Path, metric: str, rules: Any) -> list[Rule]:
    if not isinstance(rules, dict) or not rules:
        raise GateFileError(f"{path}: gate '{metric}': expected a mapping of rules ({', '.join(RULES)})")
    parsed = []
    for kind, spec in rules.items():
        where = f"{path}: gate '{metric}', rule '{kind}'"
        if kind not in RULES:
            hint = did_you_mean(str(kind), RULES)
            raise GateFileError(f"{where}: unknown rule{hint}; use one of {', '.join(RULES)}")
        if kind == "no_significant_regression":
            parsed.append(_regression_rule(where, metric, spec))
        else:
            parsed.append(Rule(metric, kind, _number(where, "value", spec)))
    return parsed


def _regression_rule(where: str, metric: str, spec: Any) -> Rule:
    spec = {} if spec is True or spec is None else spec
    if not isinstance(spec, dict):
        raise GateFileError(f"{where}: expected {{min_effect: NUMBER, alpha: NUMBER}} (both optional), got {spec!r}")
    for key in spec:
        if key not in REGRESSION_FIELDS:
            hint = did_you_mean(str(key), REGRESSION_FIELDS)
            raise GateFileError(f"{where}: unknown field '{key}'{hint}; use min_effect and alpha (both optional)")
    min_effect = _number(where, "min_effect", spec.get("min_effect", 0.0))
    alpha = _number(where, "alpha", spec.get("alpha", ALPHA))
    if min_effect < 0:
        raise GateFileError(f"{where}: field 'min_effect' must be 0 or more, got {min_effect:g}")
    if not 0 < alpha < 1:
        raise GateFileError(f"{where}: field 'alpha' must be between 0 and 1 (e.g. 0.05), got {alpha:g}")
    return Rule(metric, "no_significant_regression", min_effect, alpha)


def _number(where: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(float(value)):
        quoted = " (write it without quotes)" if isinstance(value, str) and _is_number(value) else ""
        raise GateFileError(f"{where}: field '{field}' must be a number, got {value!r}{quoted}")
    return float(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def candidate_values(report: Report) -> dict[str, float]:
    """Every figure a gate can bound: scorer means, bias gaps and human ratings of the candidate."""
    values = {m.name: m.candidate.value for m in report.metrics}
    values.update({f"{g.metric}:{g.attribute}": g.candidate.value for g in report.bias_gaps if g.candidate})
    if report.human is not None:
        values["human:likert"] = report.human.likert_candidate.value
        values["human:win_rate"] = report.human.ab_win_rate
    return {k: v for k, v in values.items() if not math.isnan(v)}


def check_gates(report: Report, rules: list[Rule]) -> GateOutcome:
    """Each rule's pass/fail with a one-line reason."""
    values = candidate_values(report)
    compared = {m.name: m for m in report.metrics}
    results = [_check(rule, values.get(rule.metric), compared.get(rule.metric)) for rule in rules]
    return GateOutcome([_with_suggestion(result, tuple(values)) for result in results])


def _with_suggestion(result: GateResult, names: tuple[str, ...]) -> GateResult:
    """A rule whose metric is missing says which metric of the report it probably meant: a scorer's metrics
    per attribute when it names the scorer (``cf_length_gap``), else the closest name (a typo)."""
    if result.actual is not None or result.rule.metric in names:
        return result
    per_attribute = sorted(name for name in names if name.startswith(result.rule.metric + ":"))
    if per_attribute:
        hint = f"; its metrics are per attribute: {', '.join(per_attribute)}"
    else:
        hint = did_you_mean(result.rule.metric, names)
    return replace(result, message=result.message + hint) if hint else result


def _check(rule: Rule, value: float | None, comparison: MetricComparison | None) -> GateResult:
    if rule.kind == "no_significant_regression":
        return _check_regression(rule, comparison)
    if value is None:
        return GateResult(rule, False, None, f"{rule.metric}: not in the report, so '{rule.kind}' cannot be checked")
    ok = value >= rule.threshold if rule.kind == "min" else value <= rule.threshold
    sign = ">=" if rule.kind == "min" else "<="
    return GateResult(rule, ok, value, f"{rule.metric} = {value:.4f} (must be {sign} {rule.threshold:g})")


def _check_regression(rule: Rule, m: MetricComparison | None) -> GateResult:
    if m is None or math.isnan(m.delta):
        return GateResult(rule, False, None,
                          f"{rule.metric}: not measured in both runs, so no regression test can be made")
    worse_by = -m.delta if m.higher_is_better else m.delta
    significant = not math.isnan(m.q_value) and m.q_value < rule.alpha
    failed = significant and worse_by >= rule.threshold and worse_by > 0
    text = (f"{rule.metric}: delta {m.delta:+.4f} [{m.delta_ci_low:+.4f}, {m.delta_ci_high:+.4f}], "
            f"q = {m.q_value:.4g}")
    return GateResult(rule, not failed, m.delta,
                      text + (f" — significant regression of at least {rule.threshold:g}" if failed else ""))
