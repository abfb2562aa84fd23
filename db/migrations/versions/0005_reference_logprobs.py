"""Generations: log-likelihoods of references get their own column.

``choice_logprobs`` held two shapes: one log-prob per choice for a multiple-choice item, and, for a generated
output whose references were scored (perplexity), one [logprob, tokens] pair per reference. The pairs move to
``reference_logprobs``; ``choice_logprobs`` keeps only choices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 11:30:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_generations = sa.table("generations", sa.column("id", sa.Integer), sa.column("choice_logprobs", _JSON),
                        sa.column("reference_logprobs", _JSON))


def _pairs(value: Any) -> bool:
    """True for the reference shape: a list of [logprob, tokens] pairs (choices are plain numbers)."""
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("reference_logprobs", _JSON, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(_generations.c.id, _generations.c.choice_logprobs)
                              .where(_generations.c.choice_logprobs.is_not(None))).all()
    moved = [row.id for row in rows if _pairs(row.choice_logprobs)]
    for start in range(0, len(moved), 500):
        ids = moved[start:start + 500]
        connection.execute(sa.update(_generations).where(_generations.c.id.in_(ids))
                           .values(reference_logprobs=_generations.c.choice_logprobs))
        connection.execute(sa.update(_generations).where(_generations.c.id.in_(ids)).values(choice_logprobs=sa.null()))


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(sa.update(_generations).where(_generations.c.reference_logprobs.is_not(None))
                       .values(choice_logprobs=_generations.c.reference_logprobs))
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("reference_logprobs")
