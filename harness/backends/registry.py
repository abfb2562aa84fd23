"""Backends by registration: a ``--model`` prefix (``openai:URL``) names the provider that resolves and loads it.

    @backend("mine")
    class MineProvider:
        def resolve(self, target: str, request: ModelRequest) -> ResolvedModel: ...   # cheap: loads nothing
        def load(self, model: ResolvedModel, options: LoadOptions) -> Backend: ...    # import the heavy parts here

A spec without a registered prefix (``default``, a folder, a hub id) goes to ``hf``. The built-in providers sit in
``harness.backends.providers`` and are registered on the first lookup; their heavy imports (torch, transformers)
happen in ``load``. An installed package adds a backend with an entry point in the group ``evaltune.backends``
named after its prefix, pointing at its provider class (or at a module that registers it with ``@backend``); it is
imported only when a spec names that prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from evaltune.harness.backends.base import Backend, BackendError
from evaltune.metrics.plugins import BACKENDS_GROUP, load_plugin, plugin_entry_points

if TYPE_CHECKING:
    from evaltune.harness.model_resolution import ResolvedModel

ENTRY_POINT_GROUP = BACKENDS_GROUP
DEFAULT_BACKEND = "hf"
_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class ModelRequest:
    """What the user gave besides ``--model``: ``--adapter``, ``--model-name``, and where models are cached."""

    home: Path
    adapter: str | None = None
    model_name: str | None = None  # the model an endpoint serves
    threads: int = 0


DTYPES = ("auto", "bfloat16", "float16", "float32")
# Requests in flight to an endpoint: a vLLM or TGI server reaches its throughput only with hundreds queued.
DEFAULT_CONCURRENCY = 256
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: ``--device``, ``--dtype``, ``--concurrency``, ``--tensor-parallel``, ``--data-parallel``.

    ``device``: cpu, cuda, cuda:N, or auto (every GPU of this machine through accelerate's ``device_map="auto"``,
    else the CPU). ``dtype``: auto (bfloat16 on a GPU that has it, else float32) or a torch dtype's name. The
    parallel settings are for engines that shard a model themselves (``vllm:``); endpoints use ``concurrency``.
    """

    dtype: str = "auto"
    device: str = "auto"
    max_batch_size: int = 0  # 0: chosen by memory
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight, for endpoints
    tensor_parallel: int = 1  # GPUs one copy of the model is split over (vllm:)
    data_parallel: int = 1  # copies of the model, each on its own GPUs (vllm:)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise BackendError(f"--dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if not _DEVICE.match(self.device):
            raise BackendError(f"--device '{self.device}' is not one of cpu, cuda, cuda:N (a GPU's index) or auto")
        for name in ("concurrency", "tensor_parallel", "data_parallel"):
            if getattr(self, name) < 1:
                raise BackendError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.max_batch_size < 0:
            raise BackendError("max_batch_size must be at least 0 (0: chosen by memory)")


@runtime_checkable
class BackendProvider(Protocol):
    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        """Check ``target`` (the spec after the prefix) and say where its model is, loading nothing. Raises
        ``BackendError`` naming the spec and the fix."""
        ...

    def load(self, model: ResolvedModel, options: LoadOptions) -> Backend:
        """The backend, ready to generate. Raises ``BackendError`` with the reason and the fix."""
        ...


_REGISTRY: dict[str, BackendProvider] = {}
P = TypeVar("P")


def backend(name: str) -> Callable[[type[P]], type[P]]:
    """Register a provider class (built with no arguments) under the ``--model`` prefix ``name`` (``name:TARGET``)."""
    if not _PREFIX.match(name):
        raise ValueError(f"backend name '{name}' must be lower-case letters, digits, '-' or '_'")

    def register(cls: type[P]) -> type[P]:
        existing = _REGISTRY.get(name)
        if existing is not None and type(existing) is not cls:
            raise ValueError(f"backend '{name}' is registered twice ({type(existing).__name__}, {cls.__name__})")
        provider = cls()
        if not isinstance(provider, BackendProvider):
            raise TypeError(f"backend '{name}': {cls.__name__} needs the methods resolve(target, request) and load")
        _REGISTRY[name] = provider
        return cls

    return register


def get_provider(name: str) -> BackendProvider:
    """The provider registered as ``name``: built in, or from an installed package's entry point.
    Raises ``BackendError`` listing the known backends."""
    provider = _find(name)
    if provider is None:
        raise BackendError(f"unknown backend '{name}'; {_known_hint()}")
    return provider


def split_spec(spec: str) -> tuple[str, str]:
    """(backend name, target) for a ``--model`` spec: ``openai:http://h/v1`` -> ("openai", "http://h/v1");
    anything without a prefix -> ("hf", spec). A prefix that names no backend (and no file) is refused."""
    prefix, colon, target = spec.partition(":")
    if not colon or not _PREFIX.match(prefix) or Path(spec).expanduser().exists():
        return DEFAULT_BACKEND, spec
    if _find(prefix) is None:
        raise BackendError(f"--model '{spec}': no backend is named '{prefix}'; {_known_hint()}")
    return prefix, target


def known_backends() -> list[str]:
    """Every backend name: registered ones and those installed packages offer, sorted."""
    _register_builtins()
    return sorted(set(_REGISTRY) | {point.name for point in plugin_entry_points(ENTRY_POINT_GROUP)})


def _find(name: str) -> BackendProvider | None:
    _register_builtins()
    if name not in _REGISTRY:
        _load_entry_point(name)
    return _REGISTRY.get(name)


def _known_hint() -> str:
    return (f"known backends: {', '.join(known_backends())} (a package adds one with an entry point in the group "
            f"'{ENTRY_POINT_GROUP}')")


def _register_builtins() -> None:
    # Registered on import: hf and openai, and vllm (whose engine is imported only when a vllm: model loads).
    from evaltune.harness.backends import providers, vllm_provider  # noqa: F401


def _load_entry_point(name: str) -> None:
    def accept(loaded: object) -> None:
        if name not in _REGISTRY and isinstance(loaded, type):
            backend(name)(loaded)  # an entry point may name the class instead of decorating it

    for point in plugin_entry_points(ENTRY_POINT_GROUP, name):
        _, problem = load_plugin(point, accept)
        if problem is not None:  # a broken plugin must not read as "unknown backend"
            raise BackendError(problem)
        return
