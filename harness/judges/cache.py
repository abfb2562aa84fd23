"""The judge's answers in the store (``db.judging``), so that judging the same outputs again asks nothing.

A call's key is a hash of the judge's fingerprint and the exact question (with the answers it may give): a changed
judge, prompt, rubric, scale or output is a new question. Rows are written in the caller's session and committed
with it (the scoring transaction, or the caller's ``session_scope``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence

from sqlalchemy.orm import Session

from evaltune.db.judging import cached_judge_calls, insert_judge_calls
from evaltune.harness.judges.clients import JudgePrompt, JudgeReply
from evaltune.harness.prompts import storable_text

CACHE_VERSION = 1  # bump when what a key stands for changes


def call_key(judge_fingerprint: str, prompt: JudgePrompt) -> str:
    payload = [CACHE_VERSION, judge_fingerprint, prompt.text, list(prompt.answers)]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """Judge calls kept in the store through ``session``."""

    def __init__(self, session: Session):
        self.session = session

    def replies(self, keys: Collection[str]) -> dict[str, JudgeReply]:
        """The stored replies among ``keys``, by key."""
        return {key: JudgeReply(call.reply, dict(call.answer_logprobs) if call.answer_logprobs is not None else None)
                for key, call in cached_judge_calls(self.session, keys).items()}

    def keep(self, judge: str, judge_fingerprint: str,
             answered: Sequence[tuple[str, JudgePrompt, JudgeReply]]) -> None:
        """Store each (key, question, reply) of ``judge``."""
        insert_judge_calls(self.session, [
            {"key": key, "judge": judge[:500], "judge_fingerprint": judge_fingerprint,
             "prompt": storable_text(prompt.text), "reply": storable_text(reply.text),
             "answer_logprobs": _storable(reply.answer_logprobs)}
            for key, prompt, reply in answered])


def _storable(logprobs: dict[str, float] | None) -> dict[str, float] | None:
    # JSON has no -inf: an answer the judge gave no chance at all is left out (its probability is 0 either way).
    if logprobs is None:
        return None
    return {answer: float(value) for answer, value in logprobs.items() if math.isfinite(value)}
