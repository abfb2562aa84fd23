"""Model versions for retuning: the base a job starts from, and the merged model a job may also save.

The adapter itself is registered by ``retune.reevaluate.register_and_load`` (it needs the loaded backend's
fingerprint)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from evaltune.db import queries
from evaltune.db.evaluation import ModelVersion
from evaltune.harness.model_resolution import ResolvedModel
from evaltune.harness.store_records import store_model_version


def register_merged(session: Session, adapter_version: ModelVersion, merged_dir: Path) -> ModelVersion:
    """The merged model (base + adapter folded in) as a model version whose parent is the adapter's version."""
    return queries.get_or_create_model_version(
        session, name=f"{adapter_version.name} (merged)", backend="hf", location=str(merged_dir.resolve()),
        fingerprint=hashlib.sha256(f"merged:{adapter_version.fingerprint}".encode()).hexdigest(),
        parent_id=adapter_version.id, retune_job_id=adapter_version.retune_job_id,
        details={"merged_from": adapter_version.id},
    )


def register_base(sessions: sessionmaker[Session], model: ResolvedModel) -> int:
    """The model version id of a base model given by spec (``default``, a folder, a hub id), registered with the
    fingerprint its backend computes (so it is the same version its runs point at). Loads the model once."""
    backend = model.load()
    try:
        with sessions.begin() as session:
            return store_model_version(session, model.record(), backend.fingerprint)
    finally:
        backend.close()
