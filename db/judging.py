"""The judge's answers, kept like generations: one row per distinct question put to one judge.

A judge call's ``key`` is a hash of the judge's fingerprint (its weights, or its endpoint and served model, and how
it is asked) and the exact prompt, so scoring the same outputs again asks nothing, and a changed prompt or judge
asks again. ``reply`` is the judge's text; ``answer_logprobs`` the log-probability of each allowed first answer
(the scale's numbers, or A/B/C) where the judge told them, None where it did not.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from evaltune.db.base import Base, utcnow
from evaltune.db.queries import CHUNK, dialect_insert


class JudgeCall(Base):
    """One question put to one judge, and its answer."""

    __tablename__ = "judge_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    judge: Mapped[str] = mapped_column(String(500))  # as shown: NAME @ HOST:PORT, or the model's folder
    judge_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text, default="")
    answer_logprobs: Mapped[dict[str, Any] | None] = mapped_column(type_=Base.type_annotation_map[dict[str, Any]])
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def cached_judge_calls(session: Session, keys: Collection[str]) -> dict[str, JudgeCall]:
    """The stored calls among ``keys``, by key."""
    wanted = sorted(set(keys))
    found: dict[str, JudgeCall] = {}
    for start in range(0, len(wanted), CHUNK):
        stmt = select(JudgeCall).where(JudgeCall.key.in_(wanted[start : start + CHUNK]))
        found.update((call.key, call) for call in session.scalars(stmt))
    return found


def insert_judge_calls(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store judge calls; a key stored meanwhile (another process judged the same question) is kept as it is."""
    if rows:
        stmt = dialect_insert(session, JudgeCall).on_conflict_do_nothing(index_elements=["key"])
        session.execute(stmt, [dict(row) for row in rows])
