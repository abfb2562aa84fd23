"""Sweeps: prompt variants x models, each cell a run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The models' db.base.Json, frozen here so that later edits to the models cannot change this migration.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_sweeps_fingerprint")),
    )
    op.create_index(op.f("ix_sweeps_name"), "sweeps", ["name"], unique=False)
    op.create_index(op.f("ix_sweeps_status"), "sweeps", ["status"], unique=False)
    op.create_table(
        "sweep_cells",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("model_label", sa.String(length=500), nullable=False),
        sa.Column("model_spec", _JSON, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweeps.id"], name=op.f("fk_sweep_cells_sweep_id_sweeps"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_sweep_cells_run_id_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_cells")),
        sa.UniqueConstraint("sweep_id", "variant", "model_label",
                            name=op.f("uq_sweep_cells_sweep_id_variant_model_label")),
    )
    op.create_index(op.f("ix_sweep_cells_sweep_id"), "sweep_cells", ["sweep_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sweep_cells_sweep_id"), table_name="sweep_cells")
    op.drop_table("sweep_cells")
    op.drop_index(op.f("ix_sweeps_status"), table_name="sweeps")
    op.drop_index(op.f("ix_sweeps_name"), table_name="sweeps")
    op.drop_table("sweeps")
