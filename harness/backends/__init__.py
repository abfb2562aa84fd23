"""Model backends. ``base`` holds the protocol and records; ``registry`` maps ``--model`` prefixes to the
providers that load them. ``hf`` and ``openai`` are imported on use, since importing torch and transformers
costs seconds that listing or validating should not pay."""

from evaltune.harness.backends.base import (
    Accepts,
    Backend,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    Prompt,
)
from evaltune.harness.backends.registry import BackendProvider, LoadOptions, ModelRequest, backend

__all__ = [
    "Accepts",
    "Backend",
    "BackendError",
    "BackendProvider",
    "Completion",
    "GenerationRequest",
    "LoadOptions",
    "Loglikelihood",
    "LoglikelihoodRequest",
    "ModelRequest",
    "Prompt",
    "backend",
]
