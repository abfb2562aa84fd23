"""What every model backend offers the runner: generate text, and score continuations.

A backend is anything with these methods (a ``Protocol``, not a base class). The runner
never looks inside one; the store records its ``fingerprint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from evaltune.harness.suite import GenerationSettings, Message


@dataclass(frozen=True)
class GenerationRequest:
    """One output to produce. ``prompt`` is already rendered by ``Backend.render``."""

    prompt: str | tuple[Message, ...]
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

    def render(self, prompt: str | tuple[Message, ...], settings: GenerationSettings) -> str | tuple[Message, ...]:
        """The exact input the model sees (chat template applied for local models)."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """One completion per request, in request order."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """One result per request, in request order."""
        ...

    def close(self) -> None: ...
