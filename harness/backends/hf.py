"""The ``hf`` backend: a transformers causal LM from a local folder or a hub id, with an optional PEFT adapter."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune import settings
from evaltune.harness.backends.base import (
    Accepts,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    OutputsDone,
    Prompt,
)
from evaltune.harness.backends.devices import place
from evaltune.harness.backends.hf_memory import batch_rows_for_memory
from evaltune.harness.backends.registry import LoadOptions
from evaltune.harness.prompts import render_prompt
from evaltune.harness.suite import GenerationSettings, Item

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Weight files above this size are fingerprinted by size plus their first and last 16 MiB, not a full hash.
_FULL_HASH_LIMIT = 1 << 30
_EDGE = 16 << 20


@dataclass(frozen=True)
class HFConfig:
    """How to load a local model. ``model`` is a folder or a hub id; ``threads`` 0 leaves torch's setting."""

    model: str
    adapter: str | None = None
    dtype: str = "auto"  # auto: bfloat16 on a GPU that has it, else float32
    device: str = "auto"  # cpu, cuda, cuda:N, or auto (harness.backends.devices)
    threads: int = 0
    max_batch_size: int = 0  # 0: as many rows as fit in a quarter of free memory (harness.backends.hf_memory)

    def __post_init__(self) -> None:
        LoadOptions(dtype=self.dtype, device=self.device)  # the one check of how they are spelled
        if self.max_batch_size < 0 or self.threads < 0:
            raise BackendError("max_batch_size and threads must be at least 0 (0: chosen for you)")


def looks_like_hub_id(spec: str) -> bool:
    """True for ``name`` or ``org/name`` written the way the Hugging Face hub spells repository ids."""
    return bool(_HUB_ID.match(spec)) and ".." not in spec and not spec.endswith((".", "-"))


def resolve_model_location(spec: str) -> tuple[str, bool]:
    """(absolute folder, True) for an existing local folder, (hub id, False) for a hub id; else BackendError."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackendError(f"{path.resolve()} has no config.json; pass a transformers model folder")
        return str(path.resolve()), True
    if looks_like_hub_id(spec) and not spec.startswith((".", "~")):
        return spec, False
    raise BackendError(
        f"no folder at {path.resolve()} and '{spec}' is not a hub id; "
        "pass a local model folder, 'default', or openai:URL"
    )


def adapter_sha256(adapter_dir: str | Path) -> str:
    """sha256 over an adapter folder's weights (``adapter_model.safetensors`` or ``.bin``) and its config."""
    folder = Path(adapter_dir)
    digest = hashlib.sha256()
    files = [folder / "adapter_config.json", *sorted(folder.glob("adapter_model.*"))]
    for file in files:
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(_file_digest(file).encode())
    return digest.hexdigest()


def text_for_model(tokenizer: Any, location: str, prompt: Prompt) -> str:
    """What a local model reads for ``prompt`` (``HFBackend.model_input``; the vllm backend reads the same)."""
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            f"the tokenizer of {location} has no chat template, so it cannot take chat messages; "
            "give the item a text input, or use a model that has one (an instruct model)"
        )
    messages = [{"role": m.role, "content": m.content} for m in prompt]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


class HFBackend:
    """Generation and log-likelihoods with transformers. See ``harness.backends.base.Backend``."""

    def __init__(self, config: HFConfig):
        self.config = config
        if config.threads:
            settings.apply_threads(config.threads)
        self.location, self.is_local = resolve_model_location(config.model)
        self.placement = place(config.device, config.dtype)
        self.device, self.dtype = self.placement.device, self.placement.dtype
        self.tokenizer = load_tokenizer(self.location, self.is_local)
        model = _load_model(self.location, self.is_local, self.dtype, self.placement.device_map)
        self.adapter_path = str(Path(config.adapter).expanduser().resolve()) if config.adapter else None
        if self.adapter_path:
            model = _apply_adapter(model, self.adapter_path)
        # Spread over the GPUs by accelerate, the weights are in place already; inputs go to model.device.
        self.model = (model if self.placement.device_map else model.to(self.device)).eval()
        self.max_batch_size = config.max_batch_size or batch_rows_for_memory(self.model, self.device)
        self._fingerprint = self._compute_fingerprint()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def accepts(self) -> Accepts:
        """Text always; chat messages only through the tokenizer's chat template."""
        return Accepts(text=True, chat=self.has_chat_template,
                       limit=f"the tokenizer of {self.location} has no chat template")

    def model_input(self, prompt: Prompt) -> str:
        """The text the model reads: text as it is, chat messages through the tokenizer's chat template (with
        the assistant's turn opened, as TRL renders a conversational prompt for training)."""
        return text_for_model(self.tokenizer, self.location, prompt)

    def render(self, prompt: Prompt, settings: GenerationSettings) -> str:
        """What the model reads for a bare prompt under ``settings`` (for scripts; the runner renders items with
        ``harness.prompts.prompt_for``: the same two steps)."""
        return self.model_input(render_prompt(Item("prompt", prompt), settings, self.accepts))

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        """One completion per request, in request order; batched, and identical to one-at-a-time when greedy.
        A request's chat messages go through the chat template here. ``on_output``: see ``Backend.generate``."""
        from evaltune.harness.backends.hf_generate import generate_all

        rendered = [
            r if isinstance(r.prompt, str) else GenerationRequest(self.model_input(r.prompt), r.settings, r.seed)
            for r in requests
        ]
        return generate_all(self.model, self.tokenizer, rendered, self.rows_for, on_output)

    def rows_for(self, positions: int) -> int:
        """Rows a generation batch may hold when its longest row reaches ``positions`` positions."""
        return self.config.max_batch_size or batch_rows_for_memory(self.model, self.device, positions)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """lm-eval-compatible log P(continuation | context), each distinct context computed once."""
        from evaltune.harness.backends.hf_loglikelihood import score_requests

        return score_requests(self.model, self.tokenizer, requests, self.max_batch_size)

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _compute_fingerprint(self) -> str:
        if self.is_local:
            weights: Any = folder_digest(Path(self.location))
        else:
            weights = {"hub_id": self.location, "revision": getattr(self.model.config, "_commit_hash", None)}
        payload = {
            "weights": weights,
            "adapter": adapter_sha256(self.adapter_path) if self.adapter_path else None,
            "dtype": self.placement.dtype_name,
        }
        if self.placement.kind != "cpu":  # only then: every CPU fingerprint stays what it always was
            payload["device"] = self.placement.kind
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _hub_kwargs(is_local: bool) -> dict[str, Any]:
    # Offline unless asked: otherwise a missing hub id retries the network for ~23 s before failing.
    return {} if is_local or settings.online() else {"local_files_only": True}


def load_tokenizer(location: str, is_local: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **_hub_kwargs(is_local))
    except (OSError, ValueError) as exc:
        raise BackendError(_load_failure(location, is_local, exc)) from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise BackendError(f"the tokenizer of {location} has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(location: str, is_local: bool, dtype: Any, device_map: str | None) -> Any:
    from transformers import AutoModelForCausalLM

    placed = {"device_map": device_map} if device_map else {}
    try:
        # No hub kernels (transformers 5.25 turns them on by default): they are fetched from the hub at run time
        # and would change a run's numbers without changing its model fingerprint.
        return AutoModelForCausalLM.from_pretrained(location, dtype=dtype, use_kernels=False, **placed,
                                                    **_hub_kwargs(is_local))
    except (OSError, ValueError) as exc:
        raise BackendError(_load_failure(location, is_local, exc)) from exc


def _load_failure(location: str, is_local: bool, exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_local:
        return f"cannot load the model in {location}: {reason}"
    return (
        f"cannot load hub model '{location}': {reason}; it is not in the local Hugging Face cache and "
        "evaltune is offline: pass a local model folder, or set EVALTUNE_ONLINE=1 to download it"
    )


def _apply_adapter(model: Any, adapter_path: str) -> Any:
    folder = Path(adapter_path)
    if not (folder / "adapter_config.json").is_file():
        raise BackendError(
            f"no PEFT adapter at {folder} (expected adapter_config.json there); "
            "pass the folder a retune job or PeftModel.save_pretrained wrote"
        )
    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            # peft 0.21 reads a property that transformers 5 marks deprecated; nothing for a user to do.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            adapted = PeftModel.from_pretrained(model, str(folder))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"cannot apply the adapter in {folder} to this model: {reason}") from exc
    # Merged weights generate as fast as the base model; this backend never trains.
    return adapted.merge_and_unload()


def folder_digest(folder: Path) -> dict[str, str]:
    """Digest of every file that decides outputs: weights, config, tokenizer and chat template."""
    patterns = ("*.safetensors", "*.bin", "*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken")
    files = sorted({f for pattern in patterns for f in folder.glob(pattern) if f.is_file()})
    return {f.name: _file_digest(f) for f in files}


def _file_digest(file: Path) -> str:
    """sha256 of the content; for a very large weight file, of its size and both ends (hashing tens of GB
    on every load would cost minutes, and training rewrites every tensor, so the last bytes change too)."""
    size = file.stat().st_size
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode())
        digest.update(handle.read(_EDGE))
        handle.seek(size - _EDGE)
        digest.update(handle.read(_EDGE))
    return "edges:" + digest.hexdigest()
