"""Security: stored log-in attempts (the rate limit survives new browser sessions) and campaign annotators.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index("ix_login_attempts_name_created_at", "login_attempts", ["name", "created_at"], unique=False)
    op.create_index("ix_login_attempts_client_created_at", "login_attempts", ["client", "created_at"], unique=False)
    op.create_table(
        "campaign_annotators",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_annotators_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_campaign_annotators_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "user_id", name=op.f("pk_campaign_annotators")),
    )
    op.create_index(op.f("ix_campaign_annotators_user_id"), "campaign_annotators", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_campaign_annotators_user_id"), table_name="campaign_annotators")
    op.drop_table("campaign_annotators")
    op.drop_index("ix_login_attempts_client_created_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_name_created_at", table_name="login_attempts")
    op.drop_table("login_attempts")
