"""Rubric grading, G-Eval style (Liu et al., 2023): the judge reads the criteria, the question and the answer,
and gives a score from 1 to N first, then a sentence of reasons.

The score is the probability-weighted mean over the scale's tokens, sum(s * P(s)) / sum(P(s)), read where the
judge wrote its score, whenever the judge tells those probabilities (a local model always does; an endpoint does
when it returns top log-probabilities); otherwise it is the number the reply starts with. ``RubricScore.method``
says which.
"""

from __future__ import annotations

import math
import re

from evaltune.harness.judges.clients import JudgePrompt, JudgeReply
from evaltune.metrics.judging import LARGEST_SCALE, SMALLEST_SCALE, RubricRequest, RubricScore

_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_SHOWN = 300  # characters of the reply quoted in a reason

PROMPT = """You will be given a question and an answer to it. Your task is to rate the answer on one metric.

Evaluation criteria:
{criteria}

Evaluation steps:
1. Read the question{extras} carefully.
2. Read the answer and check it against the criteria.
3. Give a score from 1 (worst) to {scale} (best).
{sections}
Question:
{question}

Answer:
{answer}

Reply with the score first, a single whole number from 1 to {scale}, then one sentence of reasons.
Score:"""


def check_scale(scale: int) -> None:
    """Raises ValueError unless ``scale`` is a whole number from 2 to 9."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not SMALLEST_SCALE <= scale <= LARGEST_SCALE:
        raise ValueError(f"a rubric's scale must be a whole number from {SMALLEST_SCALE} to {LARGEST_SCALE} "
                         f"(each score one digit), not {scale!r}")


def rubric_prompt(request: RubricRequest) -> JudgePrompt:
    """The question put to the judge, and the answers it may start with ("1" to "N")."""
    check_scale(request.scale)
    sections, extras = "", []
    if request.context:
        sections += f"\nContext (the source the answer should keep to):\n{request.context}\n"
        extras.append("the context")
    if request.reference:
        sections += f"\nReference answer (a right answer):\n{request.reference}\n"
        extras.append("the reference answer")
    text = PROMPT.format(criteria=request.criteria.strip(), scale=request.scale, sections=sections,
                         extras="".join(f", {e}" for e in extras), question=request.question, answer=request.answer)
    return JudgePrompt(text, tuple(str(s) for s in range(1, request.scale + 1)))


def read_score(reply: JudgeReply, scale: int) -> RubricScore:
    """The score in a reply: probability-weighted where the reply carries the scale's probabilities, else parsed
    from its text, else failed."""
    weights = {int(a): math.exp(lp) for a, lp in (reply.answer_logprobs or {}).items()}
    mass = sum(weights.values())
    if mass > 0:
        score = sum(s * p for s, p in weights.items()) / mass
        shares = ", ".join(f"P({s})={weights.get(s, 0.0) / mass:.2f}" for s in range(1, scale + 1))
        reason = (f"{score:.2f} of {scale}, weighted by the judge's probabilities ({shares}; the scale's tokens "
                  f"had probability {min(mass, 1.0):.3g} in all); it wrote: {_quote(reply.text)}")
        return RubricScore(score, _normalized(score, scale), "logprobs", reply.text, reason)
    parsed = parse_score(reply.text, scale)
    if parsed is None:
        reason = f"the judge's reply holds no score from 1 to {scale}: {_quote(reply.text)}"
        return RubricScore(None, None, "failed", reply.text, reason)
    reason = f"{parsed:g} of {scale}, read from the judge's reply (no log-probabilities): {_quote(reply.text)}"
    return RubricScore(parsed, _normalized(parsed, scale), "parsed", reply.text, reason)


def parse_score(text: str, scale: int) -> float | None:
    """The first number in ``text`` when it lies on the scale ("4", "Score: 4/5", "4.5 - clear"); else None."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = float(match.group(0))
    return number if 1 <= number <= scale else None


def _normalized(score: float, scale: int) -> float:
    return (score - 1.0) / (scale - 1.0)


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return '"' + (flat if len(flat) <= _SHOWN else flat[: _SHOWN - 1] + "…") + '"'
