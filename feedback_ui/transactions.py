"""Small SQL pieces that differ between SQLite and PostgreSQL, and the transaction retry loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, exists, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from evaltune.db.base import Base
from evaltune.db.engine import Store
from evaltune.db.evaluation import SuiteItem

T = TypeVar("T")
# PostgreSQL: serialization failure, deadlock detected. SQLite: "database is locked" past the busy timeout.
_RETRYABLE_PG_CODES = {"40001", "40P01"}


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def dialect_insert(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (the generic one does not)."""
    return (postgresql if dialect_of(session) == "postgresql" else sqlite).insert(model)


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


def _retryable(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True  # a concurrent claim took the same (item, user) first: the next attempt picks another
    code = getattr(error.orig, "sqlstate", None)
    return code in _RETRYABLE_PG_CODES or "database is locked" in str(error.orig)


def in_transaction(store: Store, work: Callable[[Session], T], attempts: int = 5) -> T:
    """Run ``work`` in its own transaction, committed on success; retried on deadlock or a lost race.

    Every other error rolls back and propagates, so a write either happens once or raises.
    """
    for attempt in range(attempts):
        try:
            with store.session_scope() as session:
                return work(session)
        except DBAPIError as error:
            if attempt == attempts - 1 or not _retryable(error):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")
