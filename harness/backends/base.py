"""What every model backend offers the runner: generate text, and score continuations.

A backend is anything with these methods (a ``Protocol``, not a base class). The runner
never looks inside one; the store records its ``fingerprint``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from evaltune.harness.suite import GenerationSettings, Message

Prompt = str | tuple[Message, ...]  # text, or chat messages
OutputsDone = Callable[[int], None]  # told how many outputs just finished, as they finish


@dataclass(frozen=True)
class Accepts:
    """Which prompt forms a model takes. ``limit`` says in the user's words why one form is missing
    ("the tokenizer of /models/x has no chat template"); the message that refuses an item quotes it."""

    text: bool = True
    chat: bool = True
    limit: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    """One output to produce. ``prompt`` is already rendered (``harness.prompts.prompt_for``): text is sent as it
    is, chat messages go through the model's chat template (or the endpoint's chat API)."""

    prompt: Prompt
    settings: GenerationSettings
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str = "stop"  # "stop" (EOS or a stop sequence) or "length"


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context), summed over the continuation's tokens."""

    context: str
    continuation: str


@dataclass(frozen=True)
class Loglikelihood:
    logprob: float
    is_greedy: bool  # every continuation token was the argmax
    tokens: int


class BackendError(RuntimeError):
    """A model could not be loaded or reached. The message says which and what to do."""


class Backend(Protocol):
    @property
    def fingerprint(self) -> str:
        """Changes whenever outputs could change: weights, adapter, tokenizer, endpoint model."""
        ...

    @property
    def accepts(self) -> Accepts:
        """Which prompt forms the model takes; ``harness.prompts.render_prompt`` chooses by it."""
        ...

    def model_input(self, prompt: Prompt) -> Prompt:
        """The exact input sent for a rendered prompt: a local model's chat template applied to messages; an
        endpoint's chat API takes them as they are. Text is sent unchanged."""
        ...

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        """One completion per request, in request order. ``on_output``, when given, is called as outputs finish
        with how many just did, so that a progress bar moves within a batch; it never changes an output."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """One result per request, in request order."""
        ...

    def close(self) -> None: ...


def generate_with_progress(backend: Backend, requests: Sequence[GenerationRequest],
                           on_output: OutputsDone | None = None) -> list[Completion]:
    """``backend.generate(requests)``, passing ``on_output`` to a backend that takes it. A backend written before
    the keyword existed (an installed plugin) still works: its outputs are then counted when the batch ends."""
    if on_output is not None and "on_output" in inspect.signature(backend.generate).parameters:
        return backend.generate(requests, on_output=on_output)
    return backend.generate(requests)
