"""One writer at a time on a SQLite store inside one process: threads writing through the store's retry policy
(``db.engine.in_transaction``), as the rating server's browser sessions do, wait on a lock that wakes them when
the writer is done, instead of polling SQLite's file lock in its busy handler (sleeps of up to 100 ms each)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from evaltune.db.engine import in_transaction, open_store

THREADS, WRITES_EACH = 6, 15


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # SQLite only: PostgreSQL has row locks, not one writer per file
    return f"sqlite:///{tmp_path / 'writers.db'}"


def test_threads_writing_to_one_sqlite_file_never_meet_its_lock(store_url: str) -> None:
    store = open_store(store_url)

    @event.listens_for(store.engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        # Without waiting in the busy handler, any two writers meeting at SQLite's lock fail at once.
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    store.engine.dispose()  # connections opened before the listener keep their 30 s busy timeout
    with store.session_scope() as session:
        session.execute(text("CREATE TABLE tally (thread INTEGER, n INTEGER)"))
    attempts: list[int] = []
    failures: list[BaseException] = []

    def write(thread: int, n: int) -> None:
        def work(session: Session) -> None:
            attempts.append(n)
            session.execute(text("INSERT INTO tally VALUES (:t, :n)"), {"t": thread, "n": n})
            time.sleep(0.002)  # a transaction that takes a while, as the app's do between statements

        in_transaction(store.sessions, work)

    def writer(thread: int) -> None:
        try:
            for n in range(WRITES_EACH):
                write(thread, n)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store.sessions() as session:
        stored = session.execute(text("SELECT count(*) FROM tally")).scalar_one()
    store.close()
    assert failures == []
    assert stored == THREADS * WRITES_EACH
    assert len(attempts) == THREADS * WRITES_EACH  # no transaction ran twice: none found the file locked
