"""Suite items: their assertions (a suite file's ``assert`` list, the suite's ``defaults`` first).

Items stored before have none: the server default gives them ``[]``, which is what their suite file meant.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The models' db.base.Json, frozen here so that later edits to the models cannot change this migration.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # A native ADD COLUMN with a default, not batch mode: rebuilding ``suite_items`` would drop the old table
    # under the generations and scores that point at its rows.
    op.add_column("suite_items", sa.Column("assertions", _JSON, nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite 3.35+), for the same reason as the upgrade.
    op.drop_column("suite_items", "assertions")
