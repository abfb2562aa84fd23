"""The one way a command opens the store: a session, committed at the end, and the store closed after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from evaltune.errors import user_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@contextmanager
def store_session() -> Iterator[Session]:
    """A session on the configured store (migrated on first use). Work in it is committed when the block
    ends and rolled back if it raises; a store that cannot be opened is a one-line user error."""
    from evaltune.db.engine import open_store

    with user_errors():
        store = open_store()
    try:
        with store.sessions.begin() as session:
            yield session
    finally:
        store.close()
