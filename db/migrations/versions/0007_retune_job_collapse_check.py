"""Retune jobs: the collapse check's figures, and the status ``degraded``.

After training, the worker compares the adapter with its base (perplexity of plain English, the canary suite) and
stores the verdict and figures in ``collapse_check``. A job whose adapter failed the check finishes ``degraded``
instead of ``succeeded``; the status column is free text, so that value needs no schema change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_jobs = sa.table("retune_jobs", sa.column("status", sa.String(20)))


def upgrade() -> None:
    with op.batch_alter_table("retune_jobs") as batch:
        batch.add_column(sa.Column("collapse_check", _JSON, nullable=True))


def downgrade() -> None:
    # Before 0007 a job that trained and re-evaluated was "succeeded" whatever its adapter did to the base.
    op.get_bind().execute(sa.update(_jobs).where(_jobs.c.status == "degraded").values(status="succeeded"))
    with op.batch_alter_table("retune_jobs") as batch:
        batch.drop_column("collapse_check")
