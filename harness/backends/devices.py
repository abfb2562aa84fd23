"""Where a local model runs: ``--device`` and ``--dtype`` checked against this machine before any weights load.

    placement = place("auto", "bfloat16")   # Placement(device="cuda:0", device_map="auto", ...) on a GPU machine

``--device``: ``cpu``; ``cuda`` (the current GPU); ``cuda:N``; ``auto``: with CUDA GPUs, accelerate's
``device_map="auto"`` over this machine's GPUs (inputs go to the model's first device), else the CPU. Under a
data-parallel launch (``accelerate launch`` / ``torchrun``: ``LOCAL_RANK`` set and ``WORLD_SIZE`` above 1)
``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK``: one whole copy of the model per process, never one copy spread
over the GPUs the other processes use.

``--dtype``: ``auto`` (bfloat16 on a GPU that computes it natively, else float32) or a torch dtype's name.
bfloat16 on a GPU without native support is refused (torch would emulate it, many times slower). float16 on the
CPU is allowed: measured with torch 2.13 on the tests' tiny Llama, 37 of 40 greedy outputs equal float32's and
log-likelihoods differ by at most 0.017 nats, no NaN (bfloat16: 14 of 40, 0.095 nats); it is about 2.7 times
slower than float32 there, so it is for checking a half-precision model, not for speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaltune.harness.backends.base import BackendError
from evaltune.harness.backends.registry import LoadOptions

# bfloat16 arithmetic in hardware starts with compute capability 8.0 (Ampere); below it torch emulates it.
_BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Placement:
    """A model's place: ``device`` is where its inputs go (``cpu``, ``cuda:0``); ``device_map`` is ``"auto"`` when
    accelerate spreads the weights over this machine's GPUs; ``dtype`` a ``torch.dtype``."""

    device: str
    dtype: Any
    device_map: str | None = None

    @property
    def kind(self) -> str:
        """``cpu`` or ``cuda``: what may change numbers (cuda:0 and cuda:1 compute alike, so the ranks of a
        data-parallel launch share one model fingerprint)."""
        return self.device.partition(":")[0]

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def place(device: str, dtype: str) -> Placement:
    """The placement ``--device``/``--dtype`` ask for on this machine. Raises ``BackendError`` naming the option
    and the fix: CUDA asked for where torch sees none, a GPU index past the last GPU, bfloat16 on a GPU that lacks
    it."""
    LoadOptions(dtype=dtype, device=device)  # the one check of the options' spelling
    target, device_map = _pick_device(device)
    return Placement(target, _pick_dtype(dtype, target, device_map), device_map)


def _pick_device(device: str) -> tuple[str, str | None]:
    import torch

    if device == "cpu":
        return "cpu", None
    available = torch.cuda.is_available()
    if device == "auto" and not available:
        return "cpu", None
    if not available:
        raise BackendError(f"--device {device}: torch sees no CUDA GPU here ({_torch_build()}); "
                           "use --device cpu, or auto (a GPU when there is one)")
    from evaltune.harness.distributed import current_launch  # here: it joins a launch's process group

    launch = current_launch()
    if launch.parallel and device in ("auto", "cuda"):
        where = f"--device {device} under a launch of {launch.world_size} processes (LOCAL_RANK={launch.local_rank})"
        return _checked_index(launch.local_rank, where), None
    if device == "auto":
        return "cuda:0", "auto"
    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()}", None
    return _checked_index(int(device.partition(":")[2]), f"--device {device}"), None


def _checked_index(index: int, asked: str) -> str:
    import torch

    count = torch.cuda.device_count()
    if index >= count:
        gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise BackendError(f"{asked}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} ({gpus}); "
                           f"pass one of them, or --device auto")
    return f"cuda:{index}"


def _pick_dtype(dtype: str, device: str, device_map: str | None) -> Any:
    import torch

    if device == "cpu":
        return torch.float32 if dtype == "auto" else getattr(torch, dtype)
    gpus = list(range(torch.cuda.device_count())) if device_map else [int(device.partition(":")[2])]
    lacking = [index for index in gpus if torch.cuda.get_device_capability(index) < _BF16_CAPABILITY]
    if dtype == "auto":
        return torch.float32 if lacking else torch.bfloat16
    if dtype == "bfloat16" and lacking:
        name = torch.cuda.get_device_name(lacking[0])
        raise BackendError(f"--dtype bfloat16: the GPU cuda:{lacking[0]} ({name}) does not compute bfloat16 "
                           "natively (it needs compute capability 8.0, Ampere or newer); use --dtype float16, "
                           "or float32")
    return getattr(torch, dtype)


def _torch_build() -> str:
    import torch

    cuda = torch.version.cuda
    return (f"torch {torch.__version__} is built for CUDA {cuda}, but no GPU or driver answers" if cuda
            else f"torch {torch.__version__} is a CPU-only build")


def checked_scoring_device(device: str) -> str:
    """A scoring model's device (``--device`` of ``evaltune score``, ``EVALTUNE_SCORING_DEVICE``) as torch takes
    it: ``auto`` becomes ``cuda:0`` with a GPU, else ``cpu``. Scoring models are small, so there is no
    ``device_map``. Raises ``BackendError`` as ``place`` does."""
    LoadOptions(device=device)
    target, device_map = _pick_device(device)
    return "cuda:0" if device_map else target


def check_placement(specs: Sequence[str], options: LoadOptions) -> None:
    """Check ``--device``/``--dtype`` (and for ``vllm:`` the parallel settings) for every ``--model`` before any
    loads, so that a GPU that is not there fails as one line, with nothing stored. A stored version (``model:3``)
    is checked when it loads; an endpoint has nothing to place."""
    from evaltune.harness.backends.registry import split_spec
    from evaltune.harness.model_resolution import stored_model_id

    kinds = {split_spec(spec)[0] for spec in specs if stored_model_id(spec) is None}
    if "vllm" in kinds:
        from evaltune.harness.backends.vllm import INSTALL, check_options
        from evaltune.harness.distributed import current_launch

        check_options(options, current_launch())
        if not _installed("vllm"):
            raise BackendError(INSTALL)
    if "hf" in kinds:
        place(options.device, options.dtype)


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:  # a parent package is missing, or an import hook refuses it
        return False
