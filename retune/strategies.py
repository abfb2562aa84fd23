"""From ratings to training rows: named, parameterised strategies over plain rating records, in one registry.

Each strategy maps ``RatingRecord``s (one annotator's judgement of one output, or of an A/B pair) to ``Row``s
in TRL's column names: ``prompt``/``chosen``/``rejected`` (dpo), ``prompt``/``completion``/``label`` (kto) or
``prompt``/``completion`` (sft). Every row keeps the ids of the ratings behind it. ``build_rows`` then applies
agreement gating, deduplication and the held-out split.

A strategy is a function registered with ``@strategy(name, method=..., parameters=...)``: its name, the training
method its rows feed and the ``StrategyParams`` fields it reads. Each field of ``StrategyParams`` carries its help
and its allowed values, so the command line (``evaltune data build``) and the app's dataset form are generated
from here, and adding a strategy touches this file only.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

METHODS = ("dpo", "kto", "sft")
# Read by build_rows for every strategy (gating and the split); the rest are declared by the strategies using them.
SHARED_PARAMETERS = ("min_agreement", "gating", "holdout", "seed")


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


def _knob(default: Any, help: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
          high_open: bool = False, choices: tuple[str, ...] = (), flag: str | None = None) -> Any:
    """A ``StrategyParams`` field with its help and allowed values (read by ``parameters()``)."""
    limits = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices, "flag": flag}
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class StrategyParams:
    """Knobs of the strategies, each checked on construction. See ``parameters()`` for their help."""

    min_gap: float = _knob(2.0, "Least gap between the mean Likert scores of the chosen and the rejected output.",
                           low=0.0, low_open=True, high=4.0)
    min_agreement: float = _knob(0.0, "Items whose raters agree less than this (share of the majority vote) are "
                                      "dropped, or down-weighted with gating 'weight'.", low=0.0, high=1.0)
    gating: str = _knob("drop", "Items under min_agreement: 'drop' leaves them out, 'weight' keeps them weighted "
                                "by their agreement.", choices=("drop", "weight"), flag="weight-by-agreement")
    holdout: float = _knob(0.1, "Share of items held out (by item, reproducible with the seed).",
                           low=0.0, high=1.0, high_open=True)
    seed: int = _knob(0, "Seed of the held-out split.")
    good_likert: int = _knob(4, "A Likert score at or above this labels an output desirable.", low=1, high=5)
    bad_likert: int = _knob(2, "A Likert score at or below this labels an output undesirable.", low=1, high=5)
    # Corrections to "I don't know" alone teach a small model to abstain everywhere; these pairs keep the answers
    # raters approved.
    abstention_anchor: str | None = _knob(None, "Also prefer each thumbs-up answer over this abstention text.")

    def __post_init__(self) -> None:
        for parameter in parameters():
            parameter.check(getattr(self, parameter.name))
        if not self.bad_likert < self.good_likert:
            raise ValueError(f"bad_likert ({self.bad_likert}) must be below good_likert ({self.good_likert})")


@dataclass(frozen=True)
class Parameter:
    """One field of ``StrategyParams`` as a form or a command line shows it.

    ``kind`` is int, float or str; ``optional``: it may be left unset (None). Numbers lie between ``low`` and
    ``high`` (either end open when ``low_open``/``high_open``); text is one of ``choices`` when there are any.
    ``flag`` is a switch spelling: set, it picks the second choice.
    """

    name: str
    kind: type
    default: Any
    help: str
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    flag: str | None = None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``[0, 1)`` or ``'drop' or 'weight'``."""
        if self.choices:
            return " or ".join(repr(choice) for choice in self.choices)
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def check(self, value: Any) -> None:
        """Raises ``ValueError`` naming the parameter unless ``value`` is allowed."""
        if value is None and self.optional:
            return
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError(f"{self.name} must be {self.allowed() if self.choices else 'text'}, got {value!r}")
            return
        number = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            raise ValueError(f"{self.name} must be {'a whole number' if self.kind is int else 'a number'}, "
                             f"got {value!r}")
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if not (above and below):  # written so that NaN fails too
            raise ValueError(f"{self.name} must be in {self.allowed()}, got {value}")


def parameters(strategy_name: str | None = None) -> list[Parameter]:
    """Every ``StrategyParams`` field (or those one strategy reads: the shared ones and its own), with its help."""
    hints = typing.get_type_hints(StrategyParams)
    wanted = None if strategy_name is None else {*SHARED_PARAMETERS, *get_strategy(strategy_name).parameters}
    found = []
    for spec in fields(StrategyParams):
        if wanted is not None and spec.name not in wanted:
            continue
        union = typing.get_args(hints[spec.name])  # (str, NoneType) for "str | None"; () for a plain type
        kind = next((kind for kind in union if kind is not type(None)), hints[spec.name])
        found.append(Parameter(spec.name, kind, spec.default, optional=type(None) in union, **spec.metadata))
    return found


Strategy = Callable[[Sequence[RatingRecord], StrategyParams, Counter[str]], list[Row]]


@dataclass(frozen=True)
class RegisteredStrategy:
    """A strategy in the registry: its name, the method its rows feed, its own parameters and its help."""

    name: str
    method: str
    parameters: tuple[str, ...]
    help: str
    build: Strategy


_REGISTRY: dict[str, RegisteredStrategy] = {}


def strategy(name: str, *, method: str, parameters: Sequence[str] = ()) -> Callable[[Strategy], Strategy]:
    """Register the decorated function as the strategy ``name`` whose rows feed ``method`` (dpo, kto, sft).

    ``parameters``: the ``StrategyParams`` fields it reads besides the shared ones. Its help is the first
    sentence of its docstring."""
    if method not in METHODS:
        raise ValueError(f"strategy {name!r}: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = set(parameters) - {spec.name for spec in fields(StrategyParams)}
    if unknown:
        raise ValueError(f"strategy {name!r}: no such parameter(s) {', '.join(sorted(unknown))} in StrategyParams")

    def register(build: Strategy) -> Strategy:
        text = " ".join((build.__doc__ or name).replace("``", "").split())
        summary = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
        _REGISTRY[name] = RegisteredStrategy(name, method, tuple(parameters), summary, build)
        return build

    return register


def strategies() -> dict[str, RegisteredStrategy]:
    """Every registered strategy by name, in registration order."""
    return dict(_REGISTRY)


def get_strategy(name: str) -> RegisteredStrategy:
    """The registered strategy ``name``; raises ``ValueError`` naming the choices for an unknown one."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _majority(votes: Sequence[Any]) -> tuple[Any, float]:
    """The most common vote and its share of all votes (the agreement)."""
    value, count = Counter(votes).most_common(1)[0]
    return value, count / len(votes)


def _same_answer(first: str, second: str) -> bool:
    """Two outputs that differ at most in surrounding spaces: no preference can be learned between them."""
    return first.strip() == second.strip()


@strategy("pairwise", method="dpo")
def pairwise_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Blind A/B votes: the majority side is chosen; ties and both-bad votes, and votes between two copies of
    the same answer, are dropped."""
    by_item: dict[tuple[int, str, str], list[RatingRecord]] = defaultdict(list)
    for record in records:
        if record.choice is None or record.side_a is None or record.side_b is None:
            counts["ignored_single_output"] += 1
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


def _by_output(records: Iterable[RatingRecord], counts: Counter[str]) -> dict[tuple[int, str], list[RatingRecord]]:
    grouped: dict[tuple[int, str], list[RatingRecord]] = defaultdict(list)
    for record in records:
        if record.choice is None:
            grouped[(record.item_id, record.output)].append(record)
        else:
            counts["ignored_ab_vote"] += 1
    return grouped


@strategy("likert-gap", method="dpo", parameters=("min_gap",))
def likert_gap_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Within one item, the best- and worst-rated outputs (mean Likert) make a pair if their gap is big enough."""
    outputs: dict[int, list[tuple[float, float, str, list[int], Any]]] = defaultdict(list)
    for (item_id, output), group in _by_output(records, counts).items():
        scores = [r.likert for r in group if r.likert is not None]
        if not scores:
            counts["ignored_no_likert"] += len(group)
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
            counts["ignored_no_correction"] += 1
            continue
        if text == record.output.strip():
            counts["dropped_correction_equals_output"] += 1
            continue
        kept.append(record)
    return kept


@strategy("correction", method="dpo", parameters=("abstention_anchor",))
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


@strategy("kto", method="kto", parameters=("good_likert", "bad_likert"))
def kto_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Thumbs (or Likert thresholds, or a hallucination flag) label an output desirable or not;
    a correction is a desirable completion of its own."""
    rows = []
    for (item_id, output), group in _by_output(records, counts).items():
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


@strategy("sft", method="sft")
def sft_rows(records: Sequence[RatingRecord], params: StrategyParams, counts: Counter[str]) -> list[Row]:
    """Corrections become supervised completions."""
    return [Row(r.item_id, r.prompt, completion=(r.correction or "").strip(), rating_ids=[r.rating_id])
            for r in _corrections(records, counts)]


# What a count of ``build_rows`` means, in words ({n} is the count); ``data build`` says why no row was made with them.
COUNT_WORDS = {
    "ignored_single_output": "{n} ratings judge one output, not an A/B pair",
    "ignored_ab_vote": "{n} ratings are A/B votes, not judgements of one output",
    "ignored_no_likert": "{n} ratings give no Likert score",
    "ignored_no_correction": "{n} ratings give no correction",
    "dropped_tie_or_both_bad": "{n} votes are ties or both-bad",
    "dropped_same_answer": "{n} compare two copies of the same answer",
    "dropped_single_output": "{n} items have only one rated output to pair",
    "dropped_small_gap": "{n} items' best and worst Likert means are closer than min_gap",
    "dropped_correction_equals_output": "{n} corrections repeat the output",
    "dropped_no_label": "{n} outputs have neither thumbs nor a Likert score past good_likert/bad_likert",
    "dropped_low_agreement": "{n} rows' raters agree less than min_agreement",
}


def why_no_rows(counts: dict[str, int]) -> list[str]:
    """The counts that explain missing rows, in words, largest first (see ``COUNT_WORDS``)."""
    found = sorted(((n, key) for key, n in counts.items() if key in COUNT_WORDS and n), reverse=True)
    return [COUNT_WORDS[key].format(n=n) for n, key in found]


def build_rows(
    records: Sequence[RatingRecord], strategy: str, params: StrategyParams
) -> tuple[list[Row], dict[str, int]]:
    """The strategy's rows after agreement gating, deduplication and the held-out split, with counts of
    what was kept and dropped and why. Raises ``ValueError`` for an unknown strategy."""
    build = get_strategy(strategy).build
    counts: Counter[str] = Counter(ratings=len(records))
    rows = _gate(build(records, params, counts), params, counts)
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
