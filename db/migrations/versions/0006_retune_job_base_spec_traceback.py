"""Retune jobs: the base model may be registered by the worker, and a failed job keeps its traceback apart.

Queueing a job no longer loads the base model to register it: a job may name its base by ``base_spec`` (the
resolved model: backend, location, ...) with ``base_model_id`` left empty until a worker registers it.
``error`` is now one sentence with the fix; the traceback behind it goes to ``traceback``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_jobs = sa.table("retune_jobs", sa.column("id", sa.Integer), sa.column("base_model_id", sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table("retune_jobs") as batch:
        batch.add_column(sa.Column("base_spec", _JSON, nullable=True))
        batch.add_column(sa.Column("traceback", sa.Text(), nullable=True))
        batch.alter_column("base_model_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    waiting = op.get_bind().execute(sa.select(_jobs.c.id).where(_jobs.c.base_model_id.is_(None))).scalars().all()
    if waiting:
        # Before 0006 every job named a registered base: these cannot be written down without loading their models.
        raise RuntimeError(f"retune jobs {', '.join(map(str, waiting))} name a base model no worker has registered "
                           "yet; run them ('evaltune worker') or delete them before downgrading below 0006")
    with op.batch_alter_table("retune_jobs") as batch:
        batch.alter_column("base_model_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("traceback")
        batch.drop_column("base_spec")
