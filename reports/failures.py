"""A run's failed assertions, one per row: the item, the assertion as its suite wrote it, what the model said,
and why the check failed.

    failures = failed_assertions(session, run_id)
    summary = assertion_summary(session, run_id)        # None: the run's items have no assertions
    print(failures_text(run_id, summary, failures))

``evaltune runs show N --failures`` prints this and the pytest plugin's ``assert_passed`` puts the same block in
its AssertionError. Everything here is read from the Score rows scoring stored for the run: ``assertions`` (1 when
every counted assertion of the output passed, 0 when one failed, None when none counted) and ``assertion:K``
(assertion K of the item, 1-based; 1 pass, 0 fail, None skipped; its details hold the assertion as written, the
reason and the measured number).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, Run, RunMetric, Score, SuiteItem
from evaltune.metrics.assertions.names import PER_ASSERTION_PREFIX, VERDICT_SCORER
from evaltune.reports.outputs import OutputsError, shorten
from evaltune.reports.outputs_format import one_line

FAILURES_SCHEMA_VERSION = 1
GOT_CHARS = 160  # what a failure shows of the output: enough to see why, short enough to scan a list
EXPECTED_CHARS = 240


@dataclass(frozen=True)
class FailedAssertion:
    """One assertion that failed on one output. ``number`` is its place in the item's list (1-based, the
    suite's defaults first); ``output`` is the whole output, ``got`` the same cut to one line for display."""

    item: str
    sample: int
    number: int
    type: str
    assertion: dict[str, Any]
    output: str
    reason: str
    measured: float | None = None
    weight: float = 1.0
    metric: str | None = None
    generation_id: int = 0

    @property
    def expected(self) -> str:
        """The assertion as a suite file writes it: ``{type: contains, value: '812'}``."""
        return shorten(written(self.assertion), EXPECTED_CHARS)

    @property
    def got(self) -> str:
        """The output on one line, control characters shown as codes, cut to ``GOT_CHARS``."""
        return shorten(one_line(self.output), GOT_CHARS) if self.output.strip() else "(empty output)"

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "sample": self.sample, "assertion_number": self.number, "type": self.type,
                "expected": written(self.assertion), "assertion": self.assertion, "got": self.got,
                "output": self.output, "reason": self.reason, "measured": self.measured, "weight": self.weight,
                "metric": self.metric, "generation_id": self.generation_id}


@dataclass(frozen=True)
class PassRate:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class AssertionSummary:
    """How a run's outputs fared against their assertions. ``unjudged`` outputs had every assertion skipped;
    ``skipped`` counts skipped assertions by their reason."""

    outputs: int
    passed: int
    failed: int
    unjudged: int
    failed_assertions: int
    samples_per_item: int = 1
    skipped: dict[str, int] = field(default_factory=dict)
    pass_rate: PassRate | None = None

    def to_dict(self) -> dict[str, Any]:
        rate = self.pass_rate
        return {"outputs": self.outputs, "passed_outputs": self.passed, "failed_outputs": self.failed,
                "unjudged_outputs": self.unjudged, "failed_assertions": self.failed_assertions,
                "skipped_assertions": sum(self.skipped.values()), "skipped": self.skipped,
                "pass_rate": None if rate is None else {"value": rate.value, "ci_low": rate.ci_low,
                                                        "ci_high": rate.ci_high, "n": rate.n}}


def written(assertion: dict[str, Any]) -> str:
    """An assertion dict as one line of YAML, the way a suite file writes it."""
    # Whole numbers as the author wrote them (weight: 0, not 0.0): the stored form turned them into floats.
    plain = {key: int(value) if isinstance(value, float) and value.is_integer() else value
             for key, value in assertion.items()}
    text = yaml.safe_dump(plain, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 30)
    return text.strip()


def _check_run(session: Session, run_id: int) -> None:
    if session.get(Run, run_id) is None:
        raise OutputsError("run", f"no run {run_id} in the store; see 'evaltune runs list'")


def failed_assertions(session: Session, run_id: int) -> list[FailedAssertion]:
    """Every assertion that failed on an output of the run, in suite order, then sample, then assertion.

    A failure with weight 0 is listed too (it is reported but does not fail its item). Raises ``OutputsError``
    for a run that is not in the store."""
    _check_run(session, run_id)
    stmt = (select(Score.scorer, Score.details, Generation.id, Generation.sample_index, Generation.output,
                   SuiteItem.key, SuiteItem.position)
            .join(Generation, Generation.id == Score.generation_id)
            .join(SuiteItem, SuiteItem.id == Generation.item_id)
            .where(Score.run_id == run_id, Score.scorer.startswith(PER_ASSERTION_PREFIX), Score.value == 0.0))
    rows = []
    for scorer, details, gid, sample, output, key, position in session.execute(stmt):
        number = _number(scorer)
        details = dict(details or {})
        assertion = details.get("assertion") or {"type": details.get("type", "?")}
        rows.append((position, sample, number, FailedAssertion(
            item=key, sample=sample, number=number, type=str(details.get("type") or assertion.get("type", "?")),
            assertion=assertion, output=output or "", reason=str(details.get("reason") or ""),
            measured=details.get("measured"), weight=float(details.get("weight", 1.0)),
            metric=details.get("metric"), generation_id=gid)))
    return [failure for *_order, failure in sorted(rows, key=lambda row: row[:3])]


def _number(scorer: str) -> int:
    suffix = scorer[len(PER_ASSERTION_PREFIX):]
    return int(suffix) if suffix.isdigit() else 0


def assertion_summary(session: Session, run_id: int) -> AssertionSummary | None:
    """The run's outputs that passed, failed or could not be judged, its failed and skipped assertions, and its
    ``pass_rate`` metric; None when no output of the run had assertions. Raises ``OutputsError`` for a run
    that is not in the store."""
    _check_run(session, run_id)
    verdicts = list(session.execute(select(Score.value).where(Score.run_id == run_id, Score.scorer == VERDICT_SCORER)
                                    ).scalars())
    if not verdicts:
        return None
    one_check = (Score.run_id == run_id, Score.scorer.startswith(PER_ASSERTION_PREFIX))
    failed = session.execute(select(func.count()).where(*one_check, Score.value == 0.0)).scalar_one()
    skipped = Counter(_skip_reason(details or {}) for details in session.execute(
        select(Score.details).where(*one_check, Score.value.is_(None))).scalars())
    samples = session.execute(select(func.max(Generation.sample_index)).where(Generation.run_id == run_id)
                              ).scalar_one_or_none()
    metric = session.execute(select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.name == "pass_rate")
                             ).scalar_one_or_none()
    return AssertionSummary(
        outputs=len(verdicts), passed=sum(v == 1.0 for v in verdicts), failed=sum(v == 0.0 for v in verdicts),
        unjudged=sum(v is None for v in verdicts), failed_assertions=failed,
        samples_per_item=(samples or 0) + 1, skipped=dict(skipped.most_common()),
        pass_rate=None if metric is None else PassRate(metric.value, metric.ci_low, metric.ci_high, metric.n))


def _skip_reason(details: dict[str, Any]) -> str:
    reason = str(details.get("reason") or "no reason given").removeprefix("skipped: ")
    return f"{details.get('type', '?')}: {reason}"


def count_line(run_id: int, summary: AssertionSummary) -> str:
    """``3 failed assertions in 2 of 5 outputs of run 12; pass_rate 0.600 [0.231, 0.882]``."""
    failed = summary.failed_assertions
    line = (f"{failed} failed assertion{'' if failed == 1 else 's'} in {summary.failed} of {summary.outputs} "
            f"outputs of run {run_id}")
    if summary.pass_rate is not None:
        rate = summary.pass_rate
        line += f"; pass_rate {rate.value:.3f} [{rate.ci_low:.3f}, {rate.ci_high:.3f}]"
    if summary.unjudged:
        line += f"; {summary.unjudged} output{'' if summary.unjudged == 1 else 's'} with every assertion skipped"
    return line


def failure_block(failure: FailedAssertion, show_sample: bool) -> list[str]:
    """One failure as four lines: the item and type, then expected, got and reason, indented."""
    item = f"{failure.item} #{failure.sample}" if show_sample else failure.item
    note = " (weight 0: reported, does not fail the item)" if failure.weight == 0 else ""
    return [f"{one_line(item)}  {failure.type} (assertion {failure.number}){note}",
            f"    expected  {one_line(failure.expected)}",
            f"    got       {failure.got}",
            f"    reason    {one_line(failure.reason) or '-'}"]


def failures_text(run_id: int, summary: AssertionSummary | None, failures: list[FailedAssertion],
                  limit: int | None = None) -> str:
    """The failures view: one block per failed assertion (the first ``limit`` of them when given), the count
    line, and a line per kind of skipped assertion."""
    if summary is None:
        return (f"run {run_id} has no assertions: none of its suite's items has an 'assert:' list "
                "(or its suite's 'defaults: {assert: [...]}')\n")
    show_sample = summary.samples_per_item > 1
    shown = failures if limit is None else failures[:limit]
    lines: list[str] = []
    for failure in shown:
        lines.extend(failure_block(failure, show_sample))
    if len(shown) < len(failures):
        lines.append(f"... and {len(failures) - len(shown)} more")
    if lines:
        lines.append("")
    lines.append(count_line(run_id, summary))
    for reason, count in summary.skipped.items():
        lines.append(f"{count} skipped: {one_line(reason)}")
    return "\n".join(lines) + "\n"


def failures_record(run_id: int, summary: AssertionSummary | None, failures: list[FailedAssertion]
                    ) -> dict[str, Any]:
    """The failures view as one JSON object (``schema_version`` so a reader survives a renamed field)."""
    return {"schema_version": FAILURES_SCHEMA_VERSION, "run_id": run_id, "has_assertions": summary is not None,
            **(summary.to_dict() if summary is not None else {}),
            "failures": [failure.to_dict() for failure in failures]}
