"""Runs: the item limit (``evaltune run --limit N``) is the run's, not the suite version's.

A suite version used to be hashed over the items a run kept, so ``--limit`` made a new suite version; now the
version is the whole suite and the run records ``item_limit``. Runs stored before have NULL: all the items of
their suite version (for a limited run, a version made of just those items).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("item_limit", sa.Integer(), nullable=True))


def downgrade() -> None:
    # A native DROP COLUMN (SQLite 3.35+), not batch mode: rebuilding ``runs`` would drop the old table, and with
    # foreign keys on, SQLite deletes its generations, scores and metrics (ON DELETE CASCADE) on the way.
    op.drop_column("runs", "item_limit")
