"""The evaltune store: typed models, engine and sessions, migrations, query helpers.

``open_store()`` is the entry point; the models live in ``db.evaluation`` (runs and what they produced), ``db.ratings``
(annotation), ``db.training`` (retuning), ``db.sweeps`` (variants x models) and ``db.judging`` (judge calls),
all on one ``metadata``.
"""

from evaltune.db import evaluation, judging, ratings, sweeps, training  # noqa: F401  (every table on metadata)
from evaltune.db.base import Base
from evaltune.db.engine import (
    Store,
    StoreError,
    current_revision,
    database_url,
    head_revision,
    make_engine,
    open_store,
    safe_url,
    upgrade,
)

# Importing the model modules above registers every table on this metadata.
metadata = Base.metadata

__all__ = [
    "Base",
    "Store",
    "StoreError",
    "current_revision",
    "database_url",
    "head_revision",
    "make_engine",
    "metadata",
    "models",
    "open_store",
    "people",
    "safe_url",
    "training",
    "upgrade",
]
