"""Judge pairwise: which of two runs' outputs a judge model prefers, item by item, asked in both orders.

    plan = pair_outputs(session, baseline_id, candidate_id, limit=None)    # what the judge is to be shown
    verdicts = judge.pairwise([...plan.to_judge as PairRequest(question, baseline, candidate)...])   # the CLI
    result = judged_pairs(plan, verdicts, pairwise_summary(verdicts).as_dict(), judge.describe(), criteria)
    print(pairwise_text(result))

The items are those both runs share (by suite item key), each run's first sample. Outputs that are the same after
whitespace is normalised are a tie by rule: the judge is not asked about them. The judge itself lives in
``harness`` (which reports may not import): its verdicts arrive here as plain values with the fields of
``harness.judges.PairVerdict`` and ``PairSummary.as_dict()``, the baseline's output being answer "a".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, Run, SuiteItem
from evaltune.metrics.stats.intervals import wilson_interval
from evaltune.reports.load import ReportError
from evaltune.reports.outputs import question_of, shorten
from evaltune.reports.outputs_format import one_line

SCHEMA_VERSION = 1
SHOWN = 60  # characters of each output in the list of lost items


class Verdict(Protocol):
    """One item's verdict (``harness.judges.PairVerdict``): "a" the baseline, "b" the candidate."""

    @property
    def winner(self) -> str: ...
    @property
    def consistent(self) -> bool: ...


@dataclass(frozen=True)
class PairedOutput:
    """One shared item with both runs' first outputs."""

    item: str
    question: str
    baseline: str
    candidate: str
    reference: str | None
    context: str | None

    @property
    def identical(self) -> bool:
        return " ".join(self.baseline.split()) == " ".join(self.candidate.split())


@dataclass(frozen=True)
class RunSide:
    id: int
    model: str
    suite: str


@dataclass(frozen=True)
class PairingPlan:
    """The shared items (``limit``: the first N in suite order) split into those the judge is asked about and
    those whose outputs are identical (a tie by rule). ``shared_items`` counts every shared item."""

    baseline: RunSide
    candidate: RunSide
    shared_items: int
    to_judge: tuple[PairedOutput, ...]
    identical: tuple[PairedOutput, ...]


@dataclass(frozen=True)
class Rate:
    """A share with its Wilson 95% interval over ``n`` pairs."""

    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class LostItem:
    item: str
    question: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class PairwiseResult:
    """The candidate against the baseline. Ties are ties by rule (identical outputs), ties the judge gave in both
    orders, and verdicts that changed with the order (position bias, not a preference). ``win_rate`` is over
    decided pairs (None when every pair tied); ``win_rate_all`` over all pairs with a tie counting half.
    ``position`` is ``PairSummary.as_dict()`` of the judged pairs (None when none was judged)."""

    baseline: RunSide
    candidate: RunSide
    judge: str
    criteria: str
    shared_items: int
    pairs: int
    wins: int
    losses: int
    ties: int
    ties_by_rule: int
    ties_judged_even: int
    ties_order_flipped: int
    judged: int
    held_both_orders: int
    win_rate: Rate | None
    win_rate_all: Rate
    position: dict[str, Any] | None
    lost: tuple[LostItem, ...]


def pair_outputs(session: Session, baseline_id: int, candidate_id: int, limit: int | None = None) -> PairingPlan:
    """Both runs' first outputs on the items they share, in the baseline suite's order. Raises ``ReportError``
    for an unknown run or runs that share no item."""
    baseline, base_outputs = _first_outputs(session, baseline_id, "BASELINE_RUN")
    candidate, cand_outputs = _first_outputs(session, candidate_id, "CANDIDATE_RUN")
    shared = [key for key in base_outputs if key in cand_outputs]
    if not shared:
        raise ReportError(f"runs {baseline_id} and {candidate_id} share no items ({baseline.suite!r} and "
                          f"{candidate.suite!r}): compare two runs of one suite (see `evaltune runs list`)")
    pairs = []
    for key in shared[:limit]:
        item, base_output = base_outputs[key]
        references = "\n".join(str(ref) for ref in item.references or [])
        pairs.append(PairedOutput(key, question_of(item.input, item.item_metadata), base_output,
                                  cand_outputs[key][1], references or None, item.context))
    return PairingPlan(baseline, candidate, len(shared), tuple(p for p in pairs if not p.identical),
                       tuple(p for p in pairs if p.identical))


def _first_outputs(session: Session, run_id: int, named_as: str
                   ) -> tuple[RunSide, dict[str, tuple[SuiteItem, str]]]:
    run = session.get(Run, run_id)
    if run is None:
        raise ReportError(f"{named_as}: no run {run_id}; `evaltune runs list` shows the stored runs")
    first = (select(Generation.item_id, func.min(Generation.sample_index).label("sample"))
             .where(Generation.run_id == run_id).group_by(Generation.item_id).subquery())
    rows = session.execute(
        select(SuiteItem, Generation.output)
        .join(Generation, Generation.item_id == SuiteItem.id)
        .join(first, (first.c.item_id == Generation.item_id) & (first.c.sample == Generation.sample_index))
        .where(Generation.run_id == run_id)
        .order_by(SuiteItem.position))
    outputs = {item.key: (item, output or "") for item, output in rows}
    return RunSide(run.id, run.model_version.name, run.suite.name), outputs


def judged_pairs(plan: PairingPlan, verdicts: Sequence[Verdict], position: Mapping[str, Any] | None, judge: str,
                 criteria: str) -> PairwiseResult:
    """The result of ``verdicts`` (one per ``plan.to_judge``, in order) and ``position`` (their
    ``pairwise_summary(...).as_dict()``; None when nothing was judged)."""
    if len(verdicts) != len(plan.to_judge):
        raise ValueError(f"{len(verdicts)} verdicts for {len(plan.to_judge)} pairs")
    wins = sum(v.winner == "b" for v in verdicts)
    losses = sum(v.winner == "a" for v in verdicts)
    by_rule = len(plan.identical)
    pairs = len(verdicts) + by_rule
    ties = pairs - wins - losses
    even = sum(v.winner == "tie" and v.consistent for v in verdicts)
    lost = tuple(LostItem(p.item, p.question, p.baseline, p.candidate)
                 for p, v in zip(plan.to_judge, verdicts, strict=True) if v.winner == "a")
    return PairwiseResult(
        plan.baseline, plan.candidate, judge, criteria, plan.shared_items, pairs, wins, losses, ties, by_rule,
        even, ties - by_rule - even, len(verdicts), sum(v.consistent for v in verdicts),
        _rate(wins, wins + losses) if wins + losses else None, _rate(wins + ties / 2, pairs),
        dict(position) if position is not None else None, lost)


def _rate(successes: float, n: int) -> Rate:
    low, high = wilson_interval(successes, n)
    return Rate(successes / n, low, high, n)


def pairwise_record(result: PairwiseResult) -> dict[str, Any]:
    """The result as JSON-ready values, with ``schema_version`` (outputs of lost items in full)."""
    return {"schema_version": SCHEMA_VERSION, **asdict(result)}


def pairwise_text(result: PairwiseResult) -> str:
    """The result for a terminal (model outputs on one line each, control characters shown as codes)."""
    base, cand = result.baseline, result.candidate
    lines = [f"candidate run {cand.id} ({cand.model}) vs baseline run {base.id} ({base.model}) on "
             f"{base.suite!r}, judged by {result.judge}",
             f"{result.pairs} pairs of {result.shared_items} shared items (each run's first sample)",
             f"candidate win rate, decided pairs: {_rate_text(result.win_rate)}",
             f"candidate win rate, all pairs (a tie counts half): {_rate_text(result.win_rate_all)}",
             f"wins {result.wins}, losses {result.losses}, ties {result.ties}: {result.ties_by_rule} identical "
             f"(not asked), {result.ties_judged_even} judged even, {result.ties_order_flipped} flipped with the order",
             f"held in both orders: {result.held_both_orders} of {result.judged} judged pairs",
             f"position bias: {_bias_text(result.position)}"]
    if result.lost:
        lines += ["", f"items the candidate lost ({len(result.lost)}):"]
        width = max(len(lost.item) for lost in result.lost)
        for lost in result.lost:
            lines.append(f"  {one_line(lost.item).ljust(width)}  baseline: {_shown(lost.baseline)}")
            lines.append(f"  {'':{width}}  candidate: {_shown(lost.candidate)}")
    return "\n".join(lines)


def _shown(text: str) -> str:
    return shorten(one_line(text), SHOWN)


def _rate_text(rate: Rate | None) -> str:
    if rate is None:
        return "n/a (every pair tied)"
    return f"{rate.value:.1%} (95% CI {rate.ci_low:.1%} to {rate.ci_high:.1%}, n={rate.n})"


def _bias_text(position: Mapping[str, Any] | None) -> str:
    if position is None or position["position_bias"] is None:
        return "n/a (the judge gave no verdict that picked a side)"
    low, high = (value - 0.5 for value in position["first_shown_ci"])
    return (f"{position['position_bias']:+.2f} (95% CI {low:+.2f} to {high:+.2f}): the judge picked the answer shown "
            f"first in {position['first_shown_rate']:.0%} of its decided answers (0 is no bias)")
