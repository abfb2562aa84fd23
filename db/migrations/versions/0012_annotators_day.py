"""The annotators' day: sessions that survive a reload, spans as offsets, identical pairs recorded as ties by
rule, and how a campaign's items were chosen.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The models' db.base.Json, frozen here so that later edits to the models cannot change this migration.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_because", sa.String(length=40), nullable=True),
        sa.Column("client", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)
    op.create_table(
        "ruled_ties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("other_generation_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_ruled_ties_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["suite_items.id"], name=op.f("fk_ruled_ties_item_id_suite_items")),
        sa.ForeignKeyConstraint(["generation_id"], ["generations.id"],
                                name=op.f("fk_ruled_ties_generation_id_generations")),
        sa.ForeignKeyConstraint(["other_generation_id"], ["generations.id"],
                                name=op.f("fk_ruled_ties_other_generation_id_generations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ruled_ties")),
    )
    op.create_index(op.f("ix_ruled_ties_campaign_id"), "ruled_ties", ["campaign_id"], unique=False)
    # Native ADD COLUMNs, not batch mode: rebuilding these tables would drop the rows that point at them.
    op.add_column("ratings", sa.Column("spans", _JSON, nullable=True))
    op.add_column("campaigns", sa.Column("selection", _JSON, nullable=False, server_default=sa.text("'{}'")))
    op.add_column("campaign_items", sa.Column("selected_because", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("campaign_items", "selected_because")
    op.drop_column("campaigns", "selection")
    op.drop_column("ratings", "spans")
    op.drop_index(op.f("ix_ruled_ties_campaign_id"), table_name="ruled_ties")
    op.drop_table("ruled_ties")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
