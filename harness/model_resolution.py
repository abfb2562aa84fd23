"""From what a user typed after ``--model`` to a backend, in two steps: ``resolve_model`` (cheap: checks
folders and names, loads nothing) and ``ResolvedModel.load`` (loads weights or contacts the endpoint).

Specs: ``default`` (SmolLM2-135M-Instruct), a local model folder, a hub id, or ``openai:URL`` with a
model name; any other ``PREFIX:TARGET`` names a registered backend (``harness.backends.registry``).
A stored model version (``model:3``) is looked up by the caller in the store, which then builds a
``ResolvedModel`` directly from the stored fields (``ResolvedModel.from_stored``).

``ResolvedModel.record`` is the one place a model version's store record (``ModelRecord``) is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltune.db.evaluation import ModelVersion
from evaltune.harness.backends.base import Backend, BackendError
from evaltune.harness.backends.hf import adapter_sha256
from evaltune.harness.backends.registry import LoadOptions, ModelRequest, get_provider, split_spec

_STORED_REF = re.compile(r"^(?:model:)?(\d+)$")


@dataclass(frozen=True)
class ModelRecord:
    """A model version as the store keeps it: the name shown, how to load it again (``backend``, ``location``,
    ``served_model``, ``adapter_path``) and where it came from (``parent_id``, ``retune_job_id``, ``details``)."""

    name: str
    backend: str
    location: str
    served_model: str | None = None
    adapter_path: str | None = None
    adapter_sha256: str | None = None
    parent_id: int | None = None
    retune_job_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model is and how to load it. ``backend_kind`` is the registered backend's name; ``location`` an
    absolute folder, a hub id or a base URL; ``served_model`` the endpoint's model name (openai only).
    ``default_cache`` is set only for the default model, whose folder ``load`` creates on first use."""

    backend_kind: str
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

    @classmethod
    def from_version(cls, version: ModelVersion, threads: int = 0) -> ResolvedModel:
        """Rebuild from a stored ``ModelVersion`` row (``model:N``, a retune's base, a collapse check's base)."""
        return cls.from_stored({"backend": version.backend, "location": version.location,
                                "served_model": version.served_model, "adapter_path": version.adapter_path,
                                "display_name": version.name}, threads=threads)

    def record(
        self, *, parent_id: int | None = None, retune_job_id: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """The store record of this model version (the inverse of ``from_stored``), with the adapter's sha256."""
        return ModelRecord(
            name=self.display_name or self.location,
            backend=self.backend_kind,
            location=self.location,
            served_model=self.served_model,
            adapter_path=self.adapter_path,
            adapter_sha256=adapter_sha256(self.adapter_path) if self.adapter_path else None,
            parent_id=parent_id,
            retune_job_id=retune_job_id,
            details=dict(details or {}),
        )

    def load(self, options: LoadOptions | None = None) -> Backend:
        """The backend, ready to use: weights loaded (converting the default model on first use) or the
        endpoint probed, on ``options``' device and dtype. Raises BackendError with the reason and the fix."""
        provider = get_provider(self.backend_kind)
        return provider.load(self, options or LoadOptions())


def stored_model_id(spec: str) -> int | None:
    """The id in ``model:3`` (or a bare ``3``) when ``spec`` names a stored model version, else None.
    The caller checks this first and builds the ResolvedModel from the store."""
    match = _STORED_REF.match(spec.strip())
    return int(match.group(1)) if match else None


def resolve_model(
    spec: str, *, adapter: str | None = None, model_name: str | None = None, home: Path, threads: int = 0
) -> ResolvedModel:
    """Check ``spec`` and say where its model is, without loading it. Raises BackendError naming the spec
    and the fix for a missing folder, an unknown name or prefix, an openai URL without a model name, or a
    bad adapter."""
    spec = spec.strip()
    if not spec:
        raise BackendError("empty model; pass a local model folder, 'default', a hub id, or openai:URL")
    if stored_model_id(spec) is not None:
        raise BackendError(f"'{spec}' is a stored model version: look it up in the store (ResolvedModel.from_stored)")
    name, target = split_spec(spec)
    request = ModelRequest(home=home, adapter=adapter, model_name=model_name, threads=threads)
    return get_provider(name).resolve(target, request)
