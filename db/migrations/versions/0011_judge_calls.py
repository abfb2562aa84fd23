"""Judge calls: the judge's answers, cached by judge and prompt like generations.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The models' db.base.Json, frozen here so that later edits to the models cannot change this migration.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "judge_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=500), nullable=False),
        sa.Column("judge_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("answer_logprobs", _JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_calls")),
        sa.UniqueConstraint("key", name=op.f("uq_judge_calls_key")),
    )
    op.create_index(op.f("ix_judge_calls_judge_fingerprint"), "judge_calls", ["judge_fingerprint"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_judge_calls_judge_fingerprint"), table_name="judge_calls")
    op.drop_table("judge_calls")
