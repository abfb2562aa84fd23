"""From ratings to training rows: named, parameterised strategies over plain rating records.

Each strategy maps ``RatingRecord``s (one annotator's judgement of one output, or of an A/B pair) to ``Row``s
in TRL's column names: ``prompt``/``chosen``/``rejected`` (pairwise, likert-gap, correction),
``prompt``/``completion``/``label`` (kto) or ``prompt``/``completion`` (sft). Every row keeps the ids of the
ratings behind it. ``build_rows`` then applies agreement gating, deduplication and the held-out split.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

STRATEGIES = ("pairwise", "likert-gap", "correction", "kto", "sft")
METHOD_OF_STRATEGY = {"pairwise": "dpo", "likert-gap": "dpo", "correction": "dpo", "kto": "kto", "sft": "sft"}


@dataclass(frozen=True)
class RatingRecord:
    """One rating with the outputs it judged. ``prompt`` is what the model saw: a string or chat messages."""

    rating_id: int
    item_id: int
    prompt: Any
    output: str = ""  # the rated output (single-output campaigns)
    generation_id: int | None = None
    likert: int | None = None
    thumbs: bool | None = None
    hallucination: bool | None = None
    correction: str | None = None
    choice: str | None = None  # pairwise: a, b, tie, both_bad
    side_a: str | None = None
    side_b: str | None = None


@dataclass
class Row:
    """One training row in TRL's column names, with the ratings behind it and the agreement among them."""

    item_id: int
    prompt: Any
    chosen: str | None = None
    rejected: str | None = None
    completion: str | None = None
    label: bool | None = None
    weight: float = 1.0
    rating_ids: list[int] = field(default_factory=list)
    split: str = "train"


@dataclass(frozen=True)
class StrategyParams:
    """Knobs of the strategies. ``min_agreement``: items whose raters agree less are dropped (``gating="drop"``)
    or kept with weight = agreement (``gating="weight"``). ``holdout``: the share of items held out."""

    min_gap: float = 2.0
    min_agreement: float = 0.0
    gating: str = "drop"
    holdout: float = 0.1
    seed: int = 0
    good_likert: int = 4  # kto: a mean Likert at or above this is desirable
    bad_likert: int = 2  # kto: at or below this, undesirable
    # correction: also prefer each thumbs-up answer over this abstention text. Corrections to "I don't know"
    # alone teach a small model to abstain everywhere; these pairs keep the answers raters approved.
    abstention_anchor: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {self.min_agreement}")
        if self.gating not in ("drop", "weight"):
            raise ValueError(f"gating must be 'drop' or 'weight', got {self.gating!r}")
        if not self.min_gap > 0:  # written so that NaN fails too
            raise ValueError(f"min_gap must be positive, got {self.min_gap}")


Strategy = Callable[[Sequence[RatingRecord], StrategyParams, Counter[str]], list[Row]]


def _majority(votes: Sequence[Any]) -> tuple[Any, float]:
    """The most common vote and its share of all votes (the agreement)."""
    value, count = Counter(votes).most_common(1)[0]
    return value, count / len(votes)


def _same_answer(first: str, second: str) -> bool:
    """Two outputs that differ at most in surrounding spaces: no preference can be learned between them."""
    return first.strip() == second.strip()


def pairwise_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Blind A/B votes: the majority side is chosen; ties and both-bad votes, and votes between two copies of
    the same answer, are dropped."""
    by_item: dict[tuple[int, str, str], list[RatingRecord]] = defaultdict(list)
    for record in records:
        if record.choice is None or record.side_a is None or record.side_b is None:
            continue
        if _same_answer(record.side_a, record.side_b):
            counts["dropped_same_answer"] += 1
            continue
        # Sides are randomised per annotator: key the pair by its two outputs in a fixed order.
        a, b = sorted((record.side_a, record.side_b))
        by_item[(record.item_id, a, b)].append(record)
    rows = []
    for (item_id, first, second), votes in by_item.items():
        winners = [_winner(r) for r in votes]
        decisive = [w for w in winners if w is not None]
        counts["dropped_tie_or_both_bad"] += len(winners) - len(decisive)
        if not decisive:
            continue
        winner, agreement = _majority(decisive)
        loser = second if winner == first else first
        rows.append(Row(item_id, votes[0].prompt, chosen=winner, rejected=loser, weight=agreement,
                        rating_ids=[r.rating_id for r in votes]))
    return rows


def _winner(record: RatingRecord) -> str | None:
    if record.choice == "a":
        return record.side_a
    if record.choice == "b":
        return record.side_b
    return None


def _by_output(records: Iterable[RatingRecord]) -> dict[tuple[int, str], list[RatingRecord]]:
    grouped: dict[tuple[int, str], list[RatingRecord]] = defaultdict(list)
    for record in records:
        if record.choice is None:
            grouped[(record.item_id, record.output)].append(record)
    return grouped


def likert_gap_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Within one item, the best- and worst-rated outputs (mean Likert) make a pair if their gap is big enough."""
    outputs: dict[int, list[tuple[float, float, str, list[int], Any]]] = defaultdict(list)
    for (item_id, output), group in _by_output(records).items():
        scores = [r.likert for r in group if r.likert is not None]
        if not scores:
            continue
        # Agreement on a 1-5 scale: 1 when all raters gave the same score, 0 when they span the whole scale.
        agreement = 1.0 - (max(scores) - min(scores)) / 4.0
        outputs[item_id].append((sum(scores) / len(scores), agreement, output, [r.rating_id for r in group],
                                 group[0].prompt))
    rows = []
    for item_id, scored in outputs.items():
        if len(scored) < 2:
            counts["dropped_single_output"] += 1
            continue
        scored.sort(key=lambda entry: entry[0])
        worst, best = scored[0], scored[-1]
        if best[0] - worst[0] < params.min_gap:
            counts["dropped_small_gap"] += 1
            continue
        if _same_answer(best[2], worst[2]):
            counts["dropped_same_answer"] += 1
            continue
        rows.append(Row(item_id, best[4], chosen=best[2], rejected=worst[2], weight=min(best[1], worst[1]),
                        rating_ids=best[3] + worst[3]))
    return rows


def _corrections(records: Sequence[RatingRecord], counts: Counter[str]) -> list[RatingRecord]:
    kept = []
    for record in records:
        text = (record.correction or "").strip()
        if not text:
            continue
        if text == record.output.strip():
            counts["dropped_correction_equals_output"] += 1
            continue
        kept.append(record)
    return kept


def correction_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """A free-text correction is preferred over the output it corrects (and, with ``abstention_anchor``, an
    approved answer over that abstention)."""
    rows = [Row(r.item_id, r.prompt, chosen=(r.correction or "").strip(), rejected=r.output,
                rating_ids=[r.rating_id]) for r in _corrections(records, counts)]
    anchor = (params.abstention_anchor or "").strip()
    if anchor:
        for r in records:
            if r.thumbs and r.output.strip() and r.output.strip() != anchor and not (r.correction or "").strip():
                rows.append(Row(r.item_id, r.prompt, chosen=r.output, rejected=anchor, rating_ids=[r.rating_id]))
                counts["approved_over_abstention"] += 1
    return rows


def sft_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Corrections become supervised completions."""
    return [Row(r.item_id, r.prompt, completion=(r.correction or "").strip(), rating_ids=[r.rating_id])
            for r in _corrections(records, counts)]


def _kto_vote(record: RatingRecord, params: StrategyParams) -> bool | None:
    if record.hallucination:
        return False
    if record.thumbs is not None:
        return record.thumbs
    if record.likert is not None:
        if record.likert >= params.good_likert:
            return True
        if record.likert <= params.bad_likert:
            return False
    return None


def kto_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Thumbs (or Likert thresholds, or a hallucination flag) label an output desirable or not;
    a correction is a desirable completion of its own."""
    rows = []
    for (item_id, output), group in _by_output(records).items():
        votes = [v for v in (_kto_vote(r, params) for r in group) if v is not None]
        if not votes:
            counts["dropped_no_label"] += 1
            continue
        label, agreement = _majority(votes)
        rows.append(Row(item_id, group[0].prompt, completion=output, label=bool(label), weight=agreement,
                        rating_ids=[r.rating_id for r in group]))
    for record in _corrections(records, counts):
        rows.append(Row(record.item_id, record.prompt, completion=(record.correction or "").strip(), label=True,
                        rating_ids=[record.rating_id]))
    return rows


_STRATEGY_FUNCTIONS: dict[str, Strategy] = {
    "pairwise": pairwise_rows,
    "likert-gap": likert_gap_rows,
    "correction": correction_rows,
    "kto": kto_rows,
    "sft": sft_rows,
}


def build_rows(
    records: Sequence[RatingRecord], strategy: str, params: StrategyParams
) -> tuple[list[Row], dict[str, int]]:
    """The strategy's rows after agreement gating, deduplication and the held-out split, with counts of
    what was kept and dropped and why. Raises ``ValueError`` for an unknown strategy."""
    if strategy not in _STRATEGY_FUNCTIONS:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    counts: Counter[str] = Counter(ratings=len(records))
    rows = _gate(_STRATEGY_FUNCTIONS[strategy](records, params, counts), params, counts)
    rows = _dedup(rows, counts)
    for row in rows:
        row.split = "holdout" if _in_holdout(row.item_id, params) else "train"
    counts["train"] = sum(row.split == "train" for row in rows)
    counts["holdout"] = len(rows) - counts["train"]
    return rows, dict(counts)


def _gate(rows: list[Row], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    kept = []
    for row in rows:
        if row.weight >= params.min_agreement:
            kept.append(replace(row, weight=row.weight if params.gating == "weight" else 1.0))
        elif params.gating == "weight":
            kept.append(row)
            counts["down_weighted_low_agreement"] += 1
        else:
            counts["dropped_low_agreement"] += 1
    return kept


def _dedup(rows: list[Row], counts: Counter[str]) -> list[Row]:
    unique: dict[str, Row] = {}
    for row in rows:
        key = json.dumps([row.prompt, row.chosen, row.rejected, row.completion, row.label], sort_keys=True)
        if key in unique:
            unique[key].rating_ids.extend(row.rating_ids)
            counts["merged_duplicates"] += 1
        else:
            unique[key] = row
    return list(unique.values())


def _in_holdout(item_id: int, params: StrategyParams) -> bool:
    # By item, so that no held-out item leaks into training through another output of the same item.
    digest = hashlib.sha256(f"{params.seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < params.holdout
