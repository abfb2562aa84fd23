"""``--model vllm:FOLDER`` (or ``vllm:default``, ``vllm:HUB_ID``): registered here without importing vllm, which
``harness.backends.vllm`` imports only when such a model loads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from evaltune.harness.backends.base import Backend, BackendError
from evaltune.harness.backends.providers import HFProvider
from evaltune.harness.backends.registry import LoadOptions, ModelRequest, backend
from evaltune.harness.default_model import ensure_default_model, is_converted
from evaltune.harness.model_resolution import ResolvedModel


@backend("vllm")
class VLLMProvider:
    """A transformers model folder, ``default`` or a hub id, run on vLLM's engine in this process."""

    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        if request.adapter:
            raise BackendError(
                f"--adapter cannot be applied to 'vllm:{target}' yet; merge the adapter into the model "
                "(PeftModel.merge_and_unload, then save_pretrained) and pass that folder, or drop the vllm: prefix"
            )
        # Where the model is and how it is checked are the hf backend's: the same folders, the same messages.
        found = HFProvider().resolve(target, request)
        return replace(found, backend_kind="vllm", display_name=f"{found.display_name} (vllm)")

    def load(self, model: ResolvedModel, options: LoadOptions) -> Backend:
        from evaltune.harness.backends.vllm import VLLMBackend

        if model.default_cache and not is_converted(Path(model.location)):
            ensure_default_model(Path(model.default_cache))
        return VLLMBackend(model.location, options, is_local=Path(model.location).is_dir())
