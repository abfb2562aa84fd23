"""Pairwise judging in both orders (as MT-Bench does): the judge sees answer a as "A" and b as "B", then the other
way round. A verdict that changes with the order is position bias, and counts as a tie.

    verdicts = judge.pairwise([PairRequest(question, answer_a, answer_b)])
    summary = pairwise_summary(verdicts)    # wins, ties, how often the verdict held, the share that favoured "A"
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from evaltune.harness.judges.clients import JudgePrompt, JudgeReply
from evaltune.metrics.stats.intervals import wilson_interval

Side = Literal["a", "b", "tie"]
LETTERS = ("A", "B", "C")  # C: a tie
UNREADABLE = "unreadable"
DEFAULT_CRITERIA = "Which answer is more helpful, correct and clear for the question?"
_LETTER = re.compile(r"\b([ABC])\b")

PROMPT = """You will be given a question and two answers to it, A and B. Your task is to say which answer is better.

Criteria:
{criteria}
{sections}
Question:
{question}

Answer A:
{first}

Answer B:
{second}

Reply with one letter first: A if answer A is better, B if answer B is better, C if they are equally good. Then give
one sentence of reasons.
Verdict:"""


@dataclass(frozen=True)
class PairRequest:
    """Two answers to one question, ``answer_a`` and ``answer_b`` (two runs' outputs), to compare on ``criteria``."""

    question: str
    answer_a: str
    answer_b: str
    criteria: str = DEFAULT_CRITERIA
    reference: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class PairVerdict:
    """``first_order`` is the verdict with a shown first, ``second_order`` with b shown first, each "a", "b", "tie"
    or "unreadable"; ``consistent`` when both are the same readable verdict. ``winner`` is that verdict, else
    "tie" (a verdict that flips with the order is position bias, not a preference)."""

    winner: Side
    consistent: bool
    first_order: str
    second_order: str


@dataclass(frozen=True)
class PairSummary:
    """What a set of pairwise verdicts says. ``first_shown_rate`` is the share of the judge's decided answers
    (each order counts once; ties and unreadable left out) that picked the answer shown first, with its Wilson
    95% interval; an unbiased judge picks it half the time, so ``position_bias`` = rate - 0.5."""

    pairs: int
    wins_a: int
    wins_b: int
    ties: int
    consistent: int
    tie_answers: int
    unreadable_answers: int
    first_shown_rate: float | None
    first_shown_ci: tuple[float, float] | None
    position_bias: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_prompts(request: PairRequest) -> tuple[JudgePrompt, JudgePrompt]:
    """The question with a shown as A, and with b shown as A."""
    sections = ""
    if request.context:
        sections += f"\nContext (the source the answers should keep to):\n{request.context}\n"
    if request.reference:
        sections += f"\nReference answer (a right answer):\n{request.reference}\n"

    def asked(first: str, second: str) -> JudgePrompt:
        text = PROMPT.format(criteria=request.criteria.strip(), sections=sections, question=request.question,
                             first=first, second=second)
        return JudgePrompt(text, LETTERS)

    return asked(request.answer_a, request.answer_b), asked(request.answer_b, request.answer_a)


def read_letter(reply: JudgeReply) -> str | None:
    """A, B or C: the most probable letter where the judge gave probabilities, else the first one it wrote."""
    logprobs = reply.answer_logprobs
    if logprobs:
        return max(logprobs, key=lambda letter: logprobs[letter])
    match = _LETTER.search(reply.text)
    return match.group(1) if match else None


def verdict(first: JudgeReply, second: JudgeReply) -> PairVerdict:
    """The verdict of the two orders' replies (``first``: a shown as A; ``second``: b shown as A)."""
    in_first = {"A": "a", "B": "b", "C": "tie"}.get(read_letter(first) or "", UNREADABLE)
    in_second = {"A": "b", "B": "a", "C": "tie"}.get(read_letter(second) or "", UNREADABLE)
    consistent = in_first == in_second and in_first != UNREADABLE
    winner: Side = in_first if consistent else "tie"  # type: ignore[assignment]
    return PairVerdict(winner, consistent, in_first, in_second)


def pairwise_summary(verdicts: Sequence[PairVerdict]) -> PairSummary:
    """Wins, ties (ties asked for and verdicts that flipped with the order), how many verdicts held in both
    orders, and the position bias (see ``PairSummary``)."""
    answers = [(v.first_order, "a") for v in verdicts] + [(v.second_order, "b") for v in verdicts]
    decided = [(said, shown_first) for said, shown_first in answers if said in ("a", "b")]
    first_shown = sum(said == shown_first for said, shown_first in decided)
    rate = first_shown / len(decided) if decided else None
    return PairSummary(
        pairs=len(verdicts),
        wins_a=sum(v.winner == "a" for v in verdicts),
        wins_b=sum(v.winner == "b" for v in verdicts),
        ties=sum(v.winner == "tie" for v in verdicts),
        consistent=sum(v.consistent for v in verdicts),
        tie_answers=sum(said == "tie" for said, _ in answers),
        unreadable_answers=sum(said == UNREADABLE for said, _ in answers),
        first_shown_rate=rate,
        first_shown_ci=wilson_interval(first_shown, len(decided)) if decided else None,
        position_bias=None if rate is None else rate - 0.5,
    )
