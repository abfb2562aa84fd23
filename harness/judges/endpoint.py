"""A judge behind an OpenAI-compatible endpoint, asked through the ``openai`` backend's own client (its session,
concurrency, retries with backoff, and the hiding of the API key and URL password in every error).

Mode ``chat`` sends the question as one user message to /chat/completions, ``completions`` as text to
/completions, ``auto`` tries chat and, when the endpoint refuses chat (no such route, no chat template), uses
completions from then on. Top log-probabilities are asked for; a server that returns none is read from its text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from evaltune import settings
from evaltune.harness.backends.base import Prompt
from evaltune.harness.backends.openai import EndpointRefused, OpenAIBackend, OpenAIConfig
from evaltune.harness.judges.clients import REPLY_TOKENS, JudgePrompt, JudgeReply, answer_logprobs
from evaltune.harness.judges.config import JudgeSpec
from evaltune.harness.model_resolution import resolve_model
from evaltune.harness.suite import Message

_NO_CHAT = (404, 405, 501)  # no chat route at all; a 400/422 counts only when it names the chat template


class EndpointJudge:
    def __init__(self, spec: JudgeSpec):
        resolved = resolve_model(spec.model, model_name=spec.model_name, home=settings.home())
        self.spec = spec
        self.backend = OpenAIBackend(OpenAIConfig(resolved.location, resolved.served_model or "", mode=spec.mode))
        self.chat = spec.mode != "completions"
        self._fingerprint = hashlib.sha256(f"endpoint:{spec.mode}:{self.backend.fingerprint}".encode()).hexdigest()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        return self.spec.describe()

    def ask(self, prompts: Sequence[JudgePrompt]) -> list[JudgeReply]:
        try:
            answered = self.backend.complete_with_logprobs([self._prompt(p.text) for p in prompts], REPLY_TOKENS)
        except EndpointRefused as error:
            if not (self.spec.mode == "auto" and self.chat and _refuses_chat(error)):
                raise
            self.chat = False
            answered = self.backend.complete_with_logprobs([self._prompt(p.text) for p in prompts], REPLY_TOKENS)
        return [JudgeReply(c.text, answer_logprobs(c.tokens, c.top_logprobs, p.answers))
                for p, c in zip(prompts, answered, strict=True)]

    def close(self) -> None:
        self.backend.close()

    def _prompt(self, text: str) -> Prompt:
        return (Message("user", text),) if self.chat else text


def _refuses_chat(error: EndpointRefused) -> bool:
    return error.status in _NO_CHAT or (error.status in (400, 422) and "template" in str(error).lower())
