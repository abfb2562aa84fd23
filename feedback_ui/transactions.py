"""Small SQL pieces that differ between SQLite and PostgreSQL, and the app's transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import ColumnElement, exists, func, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from evaltune.db.engine import Store
from evaltune.db.engine import in_transaction as engine_transaction
from evaltune.db.evaluation import SuiteItem

T = TypeVar("T")


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    """A condition: the suite item's ``tags`` JSON list contains ``tag`` (needs ``SuiteItem`` in the query)."""
    if dialect_of(session) == "postgresql":
        return type_coerce(SuiteItem.tags, postgresql.JSONB).contains([tag])
    each = func.json_each(SuiteItem.tags).table_valued("value").alias("tag_each")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def has_no_choices(session: Session) -> ColumnElement[bool]:
    """A condition: the suite item is not multiple choice, so its generations are text to rate."""
    length = func.jsonb_array_length if dialect_of(session) == "postgresql" else func.json_array_length
    return length(SuiteItem.choices) == 0


def in_transaction(store: Store, work: Callable[[Session], T]) -> T:
    """Run ``work`` in its own transaction under the store's retry policy (``db.engine.in_transaction``).

    A unique-key race counts as a conflict here: a concurrent claim took the same (item, user) first, and the
    next attempt picks another item. A lost connection is waited for, as everywhere else.
    """
    return engine_transaction(store.sessions, work, lost_race_too=True,
                              hint="this change was not saved; try again")
