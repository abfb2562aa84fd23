"""Cheap checks of a local model folder and a PEFT adapter before anything loads, so that a wrong path or an
adapter made for another model fails in a second with a message that names the file and the fix (transformers'
and PEFT's own errors come after the weights load and name neither)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from evaltune.harness.backends.base import BackendError

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_ADAPTER_FIX = "pass the folder a retune job or PeftModel.save_pretrained wrote"
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


def check_not_a_file(spec: str) -> None:
    """Refuse a file given where a model folder belongs (transformers would try it as a hub id)."""
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


def check_model_config(folder: Path) -> None:
    """A local model's config.json must be a JSON object (transformers' own error names neither file nor line)."""
    config = folder / "config.json"
    data = _json_file(config, "", "restore it from the model's source")
    if not isinstance(data, dict) or "model_type" not in data:
        raise BackendError(f"{config} has no 'model_type'; is {folder} a transformers model folder?")


def check_adapter(adapter: str) -> str:
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


def check_adapter_fits(adapter_dir: Path, model_dir: Path, adapter: str) -> None:
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
