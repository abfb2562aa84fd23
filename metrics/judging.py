"""How scorers ask a judge model without knowing where it lives: a ``Protocol`` and a context.

The harness loads the configured judge (``harness.judges``) and sets it for the time of a scoring pass:

    with judging(judge):
        results = get_scorer("judge").score_batch(examples)     # the scorer calls current_judge().rubric(...)

A scorer that finds no judge skips its items and says how to name one (``no_judge_reason``). The records a judge
reads and returns live here, because scorers build and read them; ``harness.judges`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

JUDGE_ENV = "EVALTUNE_JUDGE_MODEL"
ScoreMethod = Literal["logprobs", "parsed", "failed"]
# A rubric's scale: each score is one digit, so the judge's first answer token holds the whole distribution.
SMALLEST_SCALE, LARGEST_SCALE = 2, 9
JUDGED_ASSERTIONS = ("llm-rubric",)  # assertion types that ask the judge (scorers say so with needs=("judge",))


@dataclass(frozen=True)
class RubricRequest:
    """One answer to grade G-Eval style: how well it meets ``criteria``, on a scale of 1 to ``scale``.
    ``reference`` (a right answer) and ``context`` (the source it should keep to) are shown to the judge when set."""

    question: str
    answer: str
    criteria: str
    scale: int = 5
    reference: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class RubricScore:
    """The judge's grade. ``score`` is in [1, scale] and ``normalized`` = (score - 1) / (scale - 1) in [0, 1], both
    None when the judge gave no usable answer (``method`` "failed"). ``method`` says how the score was read:
    "logprobs" (the probability-weighted mean over the scale's tokens), "parsed" (the number in the reply text),
    "failed". ``raw`` is the reply as the judge wrote it; ``reason`` says in words how the score came about."""

    score: float | None
    normalized: float | None
    method: ScoreMethod
    raw: str
    reason: str


class RubricJudge(Protocol):
    """What a scorer may ask of the judge."""

    def describe(self) -> str:
        """The judge in a score's details: ``NAME @ HOST:PORT`` or its folder."""
        ...

    def rubric(self, requests: Sequence[RubricRequest]) -> list[RubricScore]:
        """One score per request, in request order (batched, and cached where the harness keeps a cache)."""
        ...


_current: ContextVar[RubricJudge | None] = ContextVar("evaltune_judge", default=None)


@contextmanager
def judging(judge: RubricJudge | None) -> Iterator[None]:
    """Make ``judge`` the one ``current_judge`` returns inside the block (None: no judge)."""
    token = _current.set(judge)
    try:
        yield
    finally:
        _current.reset(token)


def current_judge() -> RubricJudge | None:
    """The judge set by the harness for this scoring pass, None when none is configured."""
    return _current.get()


def no_judge_reason(what: str) -> str:
    """Why ``what`` (a scorer or an assertion type) was skipped, and how to name a judge."""
    return (f"set {JUDGE_ENV}=<local folder, hub id or openai:http://HOST:PORT/v1> (or the suite's judge:, or "
            f"--judge) to enable {what}")
