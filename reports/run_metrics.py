"""One run's metrics as the run summary, ``runs show`` and the app's Runs page list them.

Every row carries the metric's own name (``RunMetric.name``), the name reports and gates use too, so a
name copied from any of them works in a gate file. Two things make a long list readable:

- **Folding.** A bias scorer that reports one metric per attribute (``cf_length_gap:age``,
  ``cf_length_gap:gender``, ...) is listed as one row: its worst attribute (the largest gap; the lowest
  value where higher is better, as for ``cf_similarity``), noted "worst of K attributes". ``--all`` lists
  every attribute's row.
- **Small n.** A row whose n (outputs, items or counterfactual groups: whatever the metric counts) is below
  ``SMALL_N`` is marked ``(small n)``: with so few, its interval is wide and its value says little. A gap
  measured over 2–5 counterfactual groups is such a row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

SMALL_N = 30
SMALL_N_MARK = "(small n)"
SMALL_N_NOTE = (f"{SMALL_N_MARK}: n below {SMALL_N} (outputs, items or counterfactual groups), "
                "too few for the value to mean much")
FOLDED_NOTE = "bias rows show each scorer's worst attribute; --all lists every attribute"


@dataclass(frozen=True)
class MetricLine:
    """One row of a run's metric table."""

    name: str
    family: str
    higher_is_better: bool
    value: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float | None  # a bias gap's permutation p-value; None for metrics without a test
    folded: int = 0  # how many attributes' rows this row stands for (0: none folded into it)

    @property
    def small_n(self) -> bool:
        return self.n < SMALL_N

    @property
    def note(self) -> str:
        """"worst of 5 attributes; (small n)", or empty."""
        parts = [f"worst of {self.folded} attributes"] if self.folded else []
        return "; ".join(parts + ([SMALL_N_MARK] if self.small_n else []))


def metric_lines(metrics: Iterable[Mapping[str, Any]], fold: bool = False) -> list[MetricLine]:
    """Rows for metrics given as mappings (``name``, ``family``, ``higher_is_better``, ``value``, ``ci_low``,
    ``ci_high``, ``n``, ``details``), in their order; with ``fold`` each bias scorer's attributes become one row."""
    lines = [_line(m) for m in metrics]
    if not fold:
        return lines
    groups: dict[str, list[MetricLine]] = {}
    for line in lines:
        if _attribute_group(line):
            groups.setdefault(_attribute_group(line), []).append(line)
    out: list[MetricLine] = []
    for line in lines:
        members = groups.get(_attribute_group(line), [])
        if len(members) < 2:
            out.append(line)
        elif line is members[0]:  # the group's row goes where its first attribute was
            out.append(replace(max(members, key=_badness), folded=len(members)))
    return out


def table_notes(lines: list[MetricLine]) -> list[str]:
    """The lines that explain the table's notes, for those notes that appear in it."""
    return ([FOLDED_NOTE] if any(line.folded for line in lines) else []) + (
        [SMALL_N_NOTE] if any(line.small_n for line in lines) else [])


def _line(metric: Mapping[str, Any]) -> MetricLine:
    p_value = (metric.get("details") or {}).get("p_value")
    return MetricLine(str(metric["name"]), str(metric["family"]), bool(metric["higher_is_better"]),
                      _number(metric["value"]), _number(metric["ci_low"]), _number(metric["ci_high"]),
                      int(metric["n"]), None if p_value is None else float(p_value))


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _attribute_group(line: MetricLine) -> str:
    """``cf_length_gap`` for a bias metric named ``cf_length_gap:gender``; empty for any other."""
    return line.name.split(":", 1)[0] if line.family == "bias" and ":" in line.name else ""


def _badness(line: MetricLine) -> float:
    if math.isnan(line.value):
        return -math.inf
    return -line.value if line.higher_is_better else line.value
