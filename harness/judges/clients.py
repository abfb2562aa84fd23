"""How a judge is asked: one question in, its reply and the probabilities of its allowed first answers out.

A question (``JudgePrompt``) names the answers the judge may start with (the scale's numbers, or A, B and C); the
reply (``JudgeReply``) carries the judge's text and, where the judge told them, the log-probability of each of
those answers at the place it gave one. A local model always tells them (``harness.judges.local``); an endpoint
does when it returns top log-probabilities (``harness.judges.endpoint``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from evaltune.harness.backends.base import BackendError

if TYPE_CHECKING:
    from evaltune.harness.judges.config import JudgeSpec

REPLY_TOKENS = 48  # the score (or letter) and a sentence of reasons


class JudgeError(BackendError):
    """A judge could not be loaded or asked; the message says which judge and the fix, and never a secret."""


@dataclass(frozen=True)
class JudgePrompt:
    """One question for the judge: its whole instruction, and the answers it may begin its reply with."""

    text: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class JudgeReply:
    """The judge's reply; ``answer_logprobs`` holds log P(answer) for the allowed answers the judge gave
    probabilities for at the place it answered (None where it gave none)."""

    text: str
    answer_logprobs: dict[str, float] | None = None


class JudgeClient(Protocol):
    @property
    def fingerprint(self) -> str:
        """Changes whenever replies could: weights, endpoint and served model, how the judge is asked."""
        ...

    def describe(self) -> str: ...

    def ask(self, prompts: Sequence[JudgePrompt]) -> list[JudgeReply]:
        """One reply per prompt, in order, each answered greedily."""
        ...

    def close(self) -> None: ...


def load_client(spec: JudgeSpec) -> JudgeClient:
    """The client for ``spec``: an endpoint for ``openai:URL``, else a local transformers model."""
    if spec.is_endpoint:
        from evaltune.harness.judges.endpoint import EndpointJudge

        return EndpointJudge(spec)
    from evaltune.harness.judges.local import LocalJudge

    return LocalJudge(spec)


def answer_at(token: str, answers: Sequence[str]) -> str | None:
    """The allowed answer a generated token is (``" 4"`` is ``4``), else None."""
    stripped = token.strip()
    return stripped if stripped in answers else None


def answer_logprobs(tokens: Sequence[str], tops: Sequence[Mapping[str, float]],
                    answers: Sequence[str]) -> dict[str, float] | None:
    """At the first generated token that is an allowed answer, the log-probability of each allowed answer among
    the top tokens there (``" 4"`` and ``"4"`` add up). None when there are no top log-probabilities or the reply
    holds no answer token."""
    for token, top in zip(tokens, tops, strict=True):
        if answer_at(token, answers) is None:
            continue
        found: dict[str, float] = {}
        for candidate, logprob in top.items():
            answer = answer_at(candidate, answers)
            if answer is not None and math.isfinite(logprob):
                found[answer] = _logaddexp(found[answer], logprob) if answer in found else logprob
        return found or None
    return None


def _logaddexp(a: float, b: float) -> float:
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))
