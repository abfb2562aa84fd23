"""A judge that is a local transformers model (a folder, a hub id or ``default``), loaded by the ``hf`` backend on
the ``device`` and ``dtype`` its spec names (a suite's ``judge:`` block; ``evaltune score --device``).

The question goes through the model's chat template when it has one (as one user turn, the assistant's turn
opened), else as text. The reply is generated greedily; the probability of each allowed answer is read exactly
from the model as the continuation of the question (one shared forward pass per question), so a local judge's
rubric score is always the probability-weighted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from evaltune import settings
from evaltune.harness.backends.base import GenerationRequest, LoglikelihoodRequest
from evaltune.harness.backends.hf import HFBackend  # no torch: HFBackend imports it when it loads a model
from evaltune.harness.judges.clients import REPLY_TOKENS, JudgeError, JudgePrompt, JudgeReply
from evaltune.harness.judges.config import JudgeSpec
from evaltune.harness.model_resolution import resolve_model
from evaltune.harness.suite import GenerationSettings, Message

GREEDY = GenerationSettings(max_new_tokens=REPLY_TOKENS)


class LocalJudge:
    def __init__(self, spec: JudgeSpec):
        resolved = resolve_model(spec.model, home=settings.home(), threads=settings.threads())
        # The suite's judge block may place it (device:, dtype:); else auto, as a run's model.
        backend = resolved.load(spec.load_options) if resolved.backend_kind == "hf" else None
        if not isinstance(backend, HFBackend):
            raise JudgeError(f"the judge '{spec.model}' is a {resolved.backend_kind} model; a judge is a local "
                             "transformers model or openai:http://HOST:PORT/v1")
        self.spec = spec
        self.backend = backend
        self.chat = backend.has_chat_template
        form = "chat-template" if self.chat else "text"
        self._fingerprint = hashlib.sha256(f"local:{form}:{self.backend.fingerprint}".encode()).hexdigest()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        return self.spec.describe()

    def ask(self, prompts: Sequence[JudgePrompt]) -> list[JudgeReply]:
        inputs = [self._input(p.text) for p in prompts]
        completions = self.backend.generate([GenerationRequest(text, GREEDY) for text in inputs])
        # After "Score:" as plain text the model writes " 4"; after an opened assistant turn, "4".
        space = "" if self.chat else " "
        # The backend counts a context's trailing whitespace (the template's newline) as part of the continuation
        # (lm-eval's convention); its log-probability is asked too and taken off, so each answer's is its own.
        asked = [LoglikelihoodRequest(text, continuation) for text, p in zip(inputs, prompts, strict=True)
                 for continuation in ("", *(space + answer for answer in p.answers))]
        scores = iter(self.backend.loglikelihood(asked))
        replies = []
        for prompt, completion in zip(prompts, completions, strict=True):
            before = next(scores).logprob
            logprobs = {answer: next(scores).logprob - before for answer in prompt.answers}
            replies.append(JudgeReply(completion.text, logprobs))
        return replies

    def close(self) -> None:
        self.backend.close()

    def _input(self, text: str) -> str:
        return str(self.backend.model_input((Message("user", text),) if self.chat else text))
