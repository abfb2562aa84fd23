"""A campaign may hide the items' reference answers from its annotators (to rate without anchoring on them).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A native ADD COLUMN, not batch mode: rebuilding campaigns would drop the rows that point at it.
    op.add_column("campaigns", sa.Column("hide_references", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("campaigns", "hide_references")
