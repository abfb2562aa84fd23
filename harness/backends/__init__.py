"""Model backends. ``base`` holds the protocol and records; ``hf`` and ``openai`` are imported on use,
since importing torch and transformers costs seconds that listing or validating should not pay."""

from evaltune.harness.backends.base import (
    Backend,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
)

__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "GenerationRequest",
    "Loglikelihood",
    "LoglikelihoodRequest",
]
