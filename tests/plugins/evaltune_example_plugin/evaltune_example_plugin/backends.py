"""The ``echo:`` backend: answers every prompt with the prompt's words in reverse order. Real enough to run a
suite end to end without a model: ``evaltune run suite.yaml --model echo:anything``."""

from __future__ import annotations

from collections.abc import Sequence

from evaltune.harness.backends import LoadOptions, ModelRequest
from evaltune.harness.backends.base import (
    Accepts,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    Prompt,
)
from evaltune.harness.model_resolution import ResolvedModel


class EchoBackend:
    def __init__(self, name: str):
        self.name = name

    @property
    def fingerprint(self) -> str:
        return f"echo:{self.name}:v1"

    @property
    def accepts(self) -> Accepts:
        return Accepts(text=True, chat=False, limit="the echo backend takes text only")

    def model_input(self, prompt: Prompt) -> Prompt:
        return prompt

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        outputs = [" ".join(reversed(str(request.prompt).split())) for request in requests]
        return [Completion(text, len(text.split()), len(text.split()), 0.0) for text in outputs]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        # The shorter continuation is the likelier one: a rule, not a model, but every code path is real.
        return [Loglikelihood(-float(len(request.continuation)), False, 1) for request in requests]

    def close(self) -> None:
        pass


class EchoProvider:
    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        if not target.strip():
            raise BackendError("echo: needs a name after the colon, as in --model echo:demo")
        return ResolvedModel("echo", target.strip(), display_name=f"echo {target.strip()}")

    def load(self, model: ResolvedModel, options: LoadOptions) -> EchoBackend:
        return EchoBackend(model.location)
