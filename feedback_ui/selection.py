"""Which outputs a campaign asks people about, so that no judgement is wasted.

**Identical pairs.** Two outputs are identical when they are equal after whitespace normalisation (every run of
spaces, tabs, line breaks and no-break spaces is one space; leading and trailing ones go). A pairwise campaign
never queues such a pair: it is recorded as a tie by rule (``RuledTie``) instead.

**Informative selection** (``--select informative --budget N``). The budget counts judgements (ratings wanted):
at most ``N // overlap`` items are chosen, each to be rated by ``overlap`` annotators. An item (an output, or a
pair for A/B) is a candidate when at least one of these holds:

- *flipped between runs*: a pass/fail verdict differs between the campaign's runs' outputs for the same item
  and sample;
- *scorers disagree*: on one output, one correctness scorer says pass and another fail (the bias family,
  e.g. toxicity, measures something else and is left out);
- *near threshold*: a score sits within ``NEAR_MARGIN`` of the threshold it is judged against.

Thresholds are the scorers' own, read from what they stored: ``grounded_hallucination`` keeps its decision
threshold in each score's details; ``similar(threshold=...)`` its cosine and threshold; ``context_support`` its
per-sentence threshold (its weakest sentence is compared); a scorer whose run metric ``<scorer>_rate`` records a
threshold (``toxicity``) is judged against that. A judge's 0-1 value (its 1-5 grade) and an NLI contradiction
probability store none and are cut at their midpoint, 0.5.

Verdicts: a 0/1 scorer passes at 1 (higher is better) or 0 (lower is better, a hallucination flag); a scorer
compared with a threshold passes on the better side of it.

Order: items with more reasons first (closest to a threshold first among them), then one item of each reason in
turn (flips, disagreements, near-threshold items, each closest-first), ties broken by a random order drawn from
``seed``, so the same store and seed always choose the same items in the same order. Items are queued in that
order, so a campaign stopped early has rated the most informative ones.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, RunMetric, Score
from evaltune.reports.outputs import PER_ASSERTION, pass_fail_scorers

WHITESPACE = " \t\n\r\f\v\u00a0"
_WHITESPACE_RUN = re.compile(f"[{re.escape(WHITESPACE)}]+")
METHODS = ("all", "informative")
FLIPPED, DISAGREE, NEAR = "flipped between runs", "scorers disagree", "near threshold"
REASONS = (FLIPPED, DISAGREE, NEAR)
NEAR_MARGIN = 0.1  # on the 0-1 scales every thresholded scorer here uses
MIDPOINT_SCORERS = {"judge": 0.5, "nli_contradiction": 0.5}
SELECTED_BECAUSE_CHARS = 200  # campaign_items.selected_because


@dataclass(frozen=True)
class PairRow:
    """A campaign item to be: an output (``other_generation_id`` None) or an A/B pair of the same item."""

    item_id: int
    generation_id: int
    other_generation_id: int | None = None


def normalised(text: str) -> str:
    """``text`` with each run of whitespace as one space and none at either end."""
    return _WHITESPACE_RUN.sub(" ", text).strip(" ")


def without_whitespace(column: Any) -> ColumnElement[str]:
    """SQL: the text with every whitespace character removed. Two outputs that normalise equal are equal here,
    so this finds the few pairs worth comparing in Python without reading every output."""
    stripped = column
    for char in WHITESPACE:
        stripped = func.replace(stripped, char, "")
    return stripped


@dataclass(frozen=True)
class Reading:
    """What one scorer said of one output: its verdict (None: it gives none) and the number it compares with a
    threshold (None: a plain pass/fail)."""

    scorer: str
    passed: bool | None
    measure: float | None = None
    threshold: float | None = None

    @property
    def distance(self) -> float | None:
        if self.measure is None or self.threshold is None:
            return None
        return abs(self.measure - self.threshold)


@dataclass
class Candidate:
    row: PairRow
    reasons: dict[str, str] = field(default_factory=dict)  # reason -> what shows it
    distance: float = float("inf")  # to the nearest threshold, when a reason is "near threshold"

    @property
    def because(self) -> str:
        text = "; ".join(f"{reason}: {detail}" for reason, detail in self.reasons.items())
        return text if len(text) <= SELECTED_BECAUSE_CHARS else text[:SELECTED_BECAUSE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Selection:
    """The chosen rows in queue order, each with why, and the summary stored on the campaign."""

    chosen: list[tuple[PairRow, str]]
    summary: dict[str, Any]


def choose_informative(session: Session, rows: Sequence[PairRow], run_ids: Sequence[int], *, budget: int,
                       overlap: int, seed: int) -> Selection:
    """At most ``budget // overlap`` of ``rows`` where a judgement teaches the most (see the module docstring)."""
    readings = read_scores(session, run_ids)
    flips = _flipped_scorers(session, rows, run_ids, readings)
    candidates = [c for c in (_candidate(row, readings, flips) for row in rows) if c.reasons]
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)
    ranked = _ranked([candidates[i] for i in order])[:budget // overlap]
    counts = {reason: sum(reason in c.reasons for c in ranked) for reason in REASONS}
    summary = {"method": "informative", "budget": budget, "unit": "judgements", "overlap": overlap,
               "items": len(ranked), "candidates": len(rows), "informative": len(candidates), "seed": seed,
               "margin": NEAR_MARGIN, "reasons": counts}
    return Selection([(c.row, c.because) for c in ranked], summary)


def _ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Several reasons first, then one of each reason in turn; closest to a threshold first within each."""
    several = sorted((c for c in candidates if len(c.reasons) > 1), key=lambda c: (-len(c.reasons), c.distance))
    queues = [sorted((c for c in candidates if list(c.reasons) == [reason]), key=lambda c: c.distance)
              for reason in REASONS]
    interleaved = [c for turn in _zip_longest(queues) for c in turn]
    return several + interleaved


def _zip_longest(queues: list[list[Candidate]]) -> Iterable[list[Candidate]]:
    for i in range(max((len(q) for q in queues), default=0)):
        yield [q[i] for q in queues if i < len(q)]


def _candidate(row: PairRow, readings: dict[int, list[Reading]], flips: dict[PairRow, list[str]]) -> Candidate:
    candidate = Candidate(row)
    if flips.get(row):
        candidate.reasons[FLIPPED] = ", ".join(flips[row])
    outputs = [row.generation_id] + ([row.other_generation_id] if row.other_generation_id is not None else [])
    said = [reading for gid in outputs for reading in readings.get(gid, [])]
    for gid in outputs:
        verdicts = {r.scorer: r.passed for r in readings.get(gid, []) if r.passed is not None}
        if len(set(verdicts.values())) == 2 and DISAGREE not in candidate.reasons:
            candidate.reasons[DISAGREE] = ", ".join(f"{name} {'pass' if ok else 'fail'}"
                                                    for name, ok in sorted(verdicts.items()))
    near = [r for r in said if r.distance is not None and r.distance <= NEAR_MARGIN]
    if near:
        closest = min(near, key=lambda r: (r.distance, r.scorer))
        candidate.distance = closest.distance or 0.0
        candidate.reasons[NEAR] = f"{closest.scorer} {closest.measure:.3g} (threshold {closest.threshold:g})"
    candidate.reasons = {reason: candidate.reasons[reason] for reason in REASONS if reason in candidate.reasons}
    return candidate


def _flipped_scorers(session: Session, rows: Sequence[PairRow], run_ids: Sequence[int],
                     readings: dict[int, list[Reading]]) -> dict[PairRow, list[str]]:
    """Per row, the scorers whose verdict differs between the runs' outputs for its item and sample."""
    def verdicts(gid: int) -> dict[str, bool]:
        return {r.scorer: r.passed for r in readings.get(gid, []) if r.passed is not None}

    def differing(gids: list[int]) -> list[str]:
        seen: dict[str, set[bool]] = defaultdict(set)
        for gid in gids:
            for name, ok in verdicts(gid).items():
                seen[name].add(ok)
        return sorted(name for name, values in seen.items() if len(values) == 2)

    if all(row.other_generation_id is not None for row in rows):
        return {row: differing([row.generation_id, row.other_generation_id or 0]) for row in rows}
    # One output per row: its item and sample's outputs in the campaign's other runs decide.
    where = {gid: (item, sample) for gid, item, sample in session.execute(
        select(Generation.id, Generation.item_id, Generation.sample_index).where(Generation.run_id.in_(run_ids)))}
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for gid, key in where.items():
        groups[key].append(gid)
    return {row: differing(groups[where[row.generation_id]]) for row in rows if row.generation_id in where}


def read_scores(session: Session, run_ids: Sequence[int]) -> dict[int, list[Reading]]:
    """Generation id -> what each scorer said of it (see the module docstring for thresholds and verdicts)."""
    metrics = session.execute(select(RunMetric.name, RunMetric.scorer, RunMetric.higher_is_better, RunMetric.family,
                                     RunMetric.details).where(RunMetric.run_id.in_(run_ids))).all()
    higher = {scorer: better for _name, scorer, better, _family, _details in metrics}
    bias = {scorer for _name, scorer, _better, family, _details in metrics if family == "bias"}
    rate_thresholds = {scorer: threshold for name, scorer, _better, _family, details in metrics
                       if name == f"{scorer}_rate" and (threshold := _number((details or {}).get("threshold")))
                       is not None}
    binary: dict[str, bool] = {}
    for run_id in run_ids:
        binary.update(pass_fail_scorers(session, run_id))
    stmt = (select(Score.generation_id, Score.scorer, Score.value, Score.details)
            .where(Score.run_id.in_(run_ids), Score.generation_id.is_not(None), Score.value.is_not(None),
                   Score.scorer.not_like(PER_ASSERTION)))
    found: dict[int, list[Reading]] = defaultdict(list)
    for gid, scorer, value, details in session.execute(stmt):
        reading = _reading(scorer, float(value), details or {}, binary, higher, rate_thresholds.get(scorer))
        if reading is not None:
            if scorer in bias:  # not about correctness: may sit near its threshold, never "disagrees"
                reading = Reading(scorer, None, reading.measure, reading.threshold)
            found[gid].append(reading)
    return found


def _reading(scorer: str, value: float, details: dict[str, Any], binary: dict[str, bool],
             higher: dict[str, bool], rate_threshold: float | None) -> Reading | None:
    passed = (value == 1.0) == binary[scorer] if scorer in binary else None
    compared = _compared(scorer, value, details, rate_threshold)
    if compared is None:
        return None if passed is None else Reading(scorer, passed)
    measure, threshold, is_value = compared
    if passed is None and is_value and scorer in higher:
        passed = measure >= threshold if higher[scorer] else measure < threshold
    return Reading(scorer, passed, measure, threshold)


def _compared(scorer: str, value: float, details: dict[str, Any], rate_threshold: float | None
              ) -> tuple[float, float, bool] | None:
    """(the number compared with a threshold, the threshold, whether that number is the score itself)."""
    base = scorer.split("(", 1)[0]
    threshold = _number(details.get("threshold"))
    if base == "similar":
        cosine = _number(details.get("cosine"))
        return None if cosine is None or threshold is None else (cosine, threshold, False)
    if base == "context_support":
        similarities = [_number(s.get("similarity")) for s in details.get("sentences") or [] if isinstance(s, dict)]
        known = [s for s in similarities if s is not None]
        return (min(known), threshold, False) if known and threshold is not None else None
    if base in MIDPOINT_SCORERS:
        return value, MIDPOINT_SCORERS[base], True
    if threshold is not None:
        return value, threshold, True
    if rate_threshold is not None:
        return value, rate_threshold, True
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
