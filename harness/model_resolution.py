"""From what a user typed after ``--model`` to a backend, in two steps: ``resolve_model`` (cheap: checks
folders and names, loads nothing) and ``ResolvedModel.load`` (loads weights or contacts the endpoint).

Specs: ``default`` (SmolLM2-135M-Instruct), a local model folder, a hub id, or ``openai:URL`` with a
model name. A stored model version (``model:3``) is looked up by the caller in the store, which
then builds a ``ResolvedModel`` directly from the stored fields (``ResolvedModel.from_stored``).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evaltune.harness.backends.base import Backend, BackendError
from evaltune.harness.backends.hf import resolve_model_location
from evaltune.harness.default_model import (
    DEFAULT_HUB_ID,
    DEFAULT_MODEL_NAME,
    default_model_cache,
    default_model_dir,
    ensure_default_model,
    is_converted,
    online,
)

_STORED_REF = re.compile(r"^(?:model:)?(\d+)$")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_ADAPTER_FIX = "pass the folder a retune job or PeftModel.save_pretrained wrote"
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model is and how to load it. ``location`` is an absolute folder, a hub id or a base URL;
    ``served_model`` is the endpoint's model name (openai only). ``default_cache`` is set only for the
    default model, whose folder ``load`` creates on first use."""

    backend_kind: str  # "hf" or "openai"
    location: str
    served_model: str | None = None
    adapter_path: str | None = None
    display_name: str = ""
    threads: int = 0
    default_cache: str | None = None

    @classmethod
    def from_stored(cls, record: Mapping[str, Any], threads: int = 0) -> ResolvedModel:
        """Rebuild from a stored model version's fields (backend, location, served_model, adapter_path)."""
        return cls(
            backend_kind=str(record["backend"]),
            location=str(record["location"]),
            served_model=record.get("served_model"),
            adapter_path=record.get("adapter_path"),
            display_name=str(record.get("display_name") or record["location"]),
            threads=threads,
        )

    def describe(self) -> dict[str, Any]:
        """The fields a store keeps to load this model again (the inverse of ``from_stored``)."""
        record = asdict(self)
        record["backend"] = record.pop("backend_kind")
        for key in ("threads", "default_cache"):
            record.pop(key)
        return record

    def load(
        self, *, dtype: str = "auto", device: str = "auto", max_batch_size: int = 0, concurrency: int = 8
    ) -> Backend:
        """The backend, ready to use: weights loaded (converting the default model on first use) or the
        endpoint probed. Raises BackendError with the reason and the fix."""
        if self.backend_kind == "openai":
            from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig

            return OpenAIBackend(OpenAIConfig(self.location, self.served_model or "", concurrency=concurrency))
        if self.backend_kind != "hf":
            raise BackendError(f"unknown backend '{self.backend_kind}' for {self.location}; expected hf or openai")
        if self.default_cache and not is_converted(Path(self.location)):
            ensure_default_model(Path(self.default_cache))
        from evaltune.harness.backends.hf import HFBackend, HFConfig

        config = HFConfig(self.location, self.adapter_path, dtype, device, self.threads, max_batch_size)
        return HFBackend(config)


def stored_model_id(spec: str) -> int | None:
    """The id in ``model:3`` (or a bare ``3``) when ``spec`` names a stored model version, else None.
    The caller checks this first and builds the ResolvedModel from the store."""
    match = _STORED_REF.match(spec.strip())
    return int(match.group(1)) if match else None


def resolve_model(
    spec: str, *, adapter: str | None = None, model_name: str | None = None, home: Path, threads: int = 0
) -> ResolvedModel:
    """Check ``spec`` and say where its model is, without loading it. Raises BackendError naming the spec
    and the fix for a missing folder, an unknown name, an openai URL without a model name, or a bad adapter."""
    spec = spec.strip()
    if not spec:
        raise BackendError("empty model; pass a local model folder, 'default', a hub id, or openai:URL")
    if spec.startswith("openai:"):
        return _resolve_openai(spec, adapter, model_name)
    _check_not_a_file(spec)
    adapter_path = _check_adapter(adapter) if adapter else None
    suffix = f" + {Path(adapter_path).name}" if adapter_path else ""
    if spec == "default":
        cache = default_model_cache(home)
        if online():
            return ResolvedModel("hf", DEFAULT_HUB_ID, None, adapter_path, DEFAULT_MODEL_NAME + suffix, threads)
        folder = str(default_model_dir(cache).resolve())
        name = DEFAULT_MODEL_NAME + suffix
        return ResolvedModel("hf", folder, None, adapter_path, name, threads, str(cache.resolve()))
    location, is_local = resolve_model_location(spec)
    if is_local:
        _check_model_config(Path(location))
        if adapter_path:
            _check_adapter_fits(Path(adapter_path), Path(location), adapter or "")
    name = (Path(location).name if is_local else location) + suffix
    return ResolvedModel("hf", location, None, adapter_path, name, threads)


def _resolve_openai(spec: str, adapter: str | None, model_name: str | None) -> ResolvedModel:
    url = spec.removeprefix("openai:").strip()
    parts = urlsplit(url)
    if parts.username or parts.password:
        # Refused without echoing the URL: what sits before the @ is often an API key.
        raise BackendError(
            "the openai: endpoint URL holds a user name or password (before '@'); remove it from the URL and put "
            "the key in EVALTUNE_OPENAI_API_KEY, so that it is never stored, printed or reported"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(f"'{spec}' has no http(s) URL; write openai:http://HOST:PORT/v1")
    if not model_name:
        raise BackendError(
            f"'{spec}' needs the name of the model the server serves; pass --model-name NAME (see {url}/models)"
        )
    if adapter:
        raise BackendError(
            f"an adapter cannot be applied to the endpoint in '{spec}'; load it on the server "
            "(for vLLM: --lora-modules NAME=PATH) and pass --model-name NAME"
        )
    # "http://host:8000" means the usual OpenAI prefix; any explicit path is kept as written.
    path = parts.path.rstrip("/") or "/v1"
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return ResolvedModel("openai", base, model_name, None, f"{model_name} @ {parts.netloc}")


def _check_not_a_file(spec: str) -> None:
    path = Path(spec).expanduser()
    if path.is_file():
        raise BackendError(
            f"model '{spec}': {path.resolve()} is a file; pass the folder that holds config.json and the weights"
        )


def _json_file(path: Path, prefix: str, fix: str) -> Any:
    """The JSON in ``path``, or a BackendError that starts with ``prefix``, names the line and ends with ``fix``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f" (line {error.lineno}: {error.msg})" if isinstance(error, json.JSONDecodeError) else ""
        raise BackendError(f"{prefix}{path} is not valid JSON{where}; {fix}") from None


def _check_model_config(folder: Path) -> None:
    """A local model's config.json must be a JSON object (transformers' own error names neither file nor line)."""
    config = folder / "config.json"
    data = _json_file(config, "", "restore it from the model's source")
    if not isinstance(data, dict) or "model_type" not in data:
        raise BackendError(f"{config} has no 'model_type'; is {folder} a transformers model folder?")


def _check_adapter(adapter: str) -> str:
    """The adapter's absolute folder, after checking that it holds a PEFT config and weights."""
    folder = Path(adapter).expanduser().resolve()
    config = folder / "adapter_config.json"
    if not config.is_file():
        what = "no folder" if not folder.exists() else "a file, not a folder" if folder.is_file() else None
        where = f"{what} at {folder}" if what else f"no adapter_config.json in {folder}"
        raise BackendError(f"adapter '{adapter}': {where}; {_ADAPTER_FIX}")
    data = _json_file(config, f"adapter '{adapter}': ", _ADAPTER_FIX)
    if not isinstance(data, dict) or "peft_type" not in data:
        raise BackendError(f"adapter '{adapter}': {config} has no 'peft_type'; {_ADAPTER_FIX}")
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise BackendError(
            f"adapter '{adapter}': no weights in {folder} (expected {' or '.join(ADAPTER_WEIGHTS)}); "
            "the save may have been interrupted: save or train it again"
        )
    return str(folder)


def _check_adapter_fits(adapter_dir: Path, model_dir: Path, adapter: str) -> None:
    """Refuse an adapter made for another base model before any weights load, by comparing the shapes in
    the safetensors headers: each LoRA matrix must match the size of the layer it changes. Skipped when
    either side is not safetensors or the base weights are quantised."""
    adapter_shapes = _safetensors_shapes([adapter_dir / ADAPTER_WEIGHTS[0]])
    base_shapes = _safetensors_shapes(sorted(model_dir.glob("*.safetensors")), floats_only=True)
    if not adapter_shapes or not base_shapes:
        return
    for key, shape in sorted(adapter_shapes.items()):
        module, found, _ = key.partition(".lora_")
        if not found or len(shape) != 2:
            continue
        problem = _shape_problem(module.removeprefix("base_model.model."), shape, base_shapes)
        if problem:
            made_for = _adapter_base_name(adapter_dir)
            raise BackendError(
                f"adapter '{adapter}' was made for another model{made_for}: it {problem} in {model_dir}; "
                "pass the adapter's own base model with --model"
            )


def _shape_problem(layer: str, lora: tuple[int, ...], base_shapes: dict[str, tuple[int, ...]]) -> str | None:
    base = _base_weight(layer, base_shapes)
    # A LoRA matrix is (r, in) or (out, r); either layout of the base weight (Linear or GPT-2's Conv1D) is fine.
    # A layer not found under any name is left to PEFT: checkpoints name their weights in more than one way.
    if base is None or any(size in base for size in lora):
        return None
    return f"changes {layer} with a matrix of shape {list(lora)}, but that layer's weight is {list(base)}"


def _base_weight(layer: str, base_shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """The shape of ``layer``'s weight, also when the checkpoint leaves out leading names ("transformer.")."""
    parts = layer.split(".")
    for start in range(len(parts)):
        shape = base_shapes.get(".".join([*parts[start:], "weight"]))
        if shape is not None:
            return shape
    return None


def _adapter_base_name(adapter_dir: Path) -> str:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        name = config.get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" ({name})" if name else ""


def _safetensors_shapes(files: list[Path], floats_only: bool = False) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the JSON headers of safetensors files (no weights are read).
    Empty when a file is missing or unreadable, or (``floats_only``) holds quantised tensors."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with file.open("rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(min(size, 100 << 20)))
        except (OSError, ValueError, struct.error):
            return {}
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            if floats_only and info.get("dtype") not in _FLOAT_DTYPES:
                return {}
            shapes[name] = tuple(info.get("shape", ()))
    return shapes
