"""Where the store lives, how to connect to it, and how its schema is brought up to date.

SQLite (the default, one file in ``$EVALTUNE_HOME``) and PostgreSQL (``EVALTUNE_DB_URL``) behave the same
to callers: ``open_store()`` connects, applies any pending Alembic migrations and hands back a ``Store``
whose ``session_scope()`` commits on success and rolls back on error.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from evaltune import settings

if TYPE_CHECKING:  # alembic costs 0.2 s to import; only code that migrates pays for it
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed number: every evaltune process takes this PostgreSQL advisory lock while migrating.
_PG_MIGRATION_LOCK = 0x65766C74
_URL_HELP = "set EVALTUNE_DB_URL to sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
RECONNECT_WAIT_S = 30.0  # how long a write waits for a lost store (a PostgreSQL restart) to come back
# PostgreSQL SQLSTATEs that mean "this connection is gone, another may work": class 08 (connection
# exception), admin shutdown, crash shutdown, and "cannot connect now" (the server is starting up).
_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
_CONFLICT_STATES = ("40001", "40P01")  # PostgreSQL: serialization failure, deadlock detected
CONFLICT_ATTEMPTS = 5
_log = logging.getLogger("evaltune.store")
T = TypeVar("T")


class StoreError(RuntimeError):
    """The store cannot be opened or migrated; the message names the (masked) URL and the fix."""


def database_url() -> str:
    """``EVALTUNE_DB_URL`` if set, else a SQLite file in ``$EVALTUNE_HOME`` (created if missing)."""
    return settings.db_url() or f"sqlite:///{settings.home() / 'evaltune.db'}"


def safe_url(url: str) -> str:
    """The URL with any password (in the authority or a ``password=`` query) replaced by ``***``."""
    masked = re.sub(r"((?:^|://)[^/:@?#]*:)[^@/?#]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", masked)


def _scrub(message: str, url: str) -> str:
    """A driver's error message with the URL's password removed, in case the driver echoed it."""
    try:
        password = make_url(url).password
    except exc.ArgumentError:
        password = None
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return first_line.replace(str(password), "***") if password else first_line


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default ``database_url()``), tuned for the backend.

    SQLite: WAL journal, foreign keys enforced, a 30 s busy timeout, and SAVEPOINTs that nest inside
    the surrounding transaction. PostgreSQL: ``postgres://`` and ``postgresql://`` mean psycopg 3, and
    connections are pinged before use. Raises ``StoreError``
    for a URL that cannot be parsed or whose driver is missing; nothing is connected yet.
    """
    url = url or database_url()
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):  # psycopg 3 is the driver evaltune ships with
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 10}
        engine = create_engine(parsed, **kwargs)
    except exc.ArgumentError:
        raise StoreError(f"cannot parse the database URL {safe_url(url)!r}; {_URL_HELP}") from None
    except exc.NoSuchModuleError:
        raise StoreError(f"unknown database type in {safe_url(url)!r}; {_URL_HELP}") from None
    except ModuleNotFoundError as err:
        raise StoreError(
            f"the driver for {safe_url(url)!r} is not installed ({err.name}); "
            "for PostgreSQL: pip install 'evaltune[postgres]'"
        ) from None
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _set_wal(cursor: Any) -> None:
    """WAL journal, so that readers (the app) never wait for a writer (the runner).

    Two processes opening a brand-new file at once both try to switch it to WAL; SQLite resolves
    that deadlock by failing one at once, without waiting for the busy timeout, so retry briefly.
    """
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == 99:
                raise
            time.sleep(0.05)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # pysqlite begins a transaction only at the first INSERT/UPDATE/DELETE, so a SAVEPOINT issued
    # before any write would open the outermost transaction and its RELEASE would commit everything.
    # Beginning explicitly first keeps begin_nested() inside the session's transaction.
    @event.listens_for(engine, "savepoint")
    def _on_savepoint(conn: Connection, _name: str | None) -> None:
        if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN")


def _connect_error(url: str, err: Exception) -> StoreError:
    cause = _scrub(str(getattr(err, "orig", None) or err), url)
    fix = (
        "check that the folder exists and is writable"
        if url.startswith("sqlite")
        else "check that the server is running and reachable, and the user, password and database"
    )
    return StoreError(f"cannot open the database at {safe_url(url)}: {cause}. Fix: {fix} ({_URL_HELP}).")


def _full_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    """The newest migration this version of evaltune ships."""
    head = _script().get_current_head()
    assert head is not None, "db/migrations/versions is empty"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's migration revision; None for an empty database. Raises ``StoreError`` if unreachable."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except exc.DBAPIError as err:
        raise _connect_error(_full_url(engine), err) from None


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped migrations; with ``connection``, env.py migrates through it."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> list[str]:
    """Apply pending migrations in one transaction; return the revisions applied, oldest first.

    Concurrent callers (a runner and the app starting together) are serialised: SQLite by an
    immediate write lock, PostgreSQL by an advisory lock, so the second one finds nothing to do.
    """
    from alembic import command

    applied: list[str] = []
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # also makes the DDL transactional
            elif conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config = alembic_config(conn)
            config.attributes["on_version_apply"] = lambda *, step, **_: applied.append(step.up_revision_id)
            command.upgrade(config, revision)
    except exc.OperationalError as err:
        raise _connect_error(_full_url(engine), err) from None
    return applied


def ensure_current(engine: Engine) -> list[str]:
    """Migrate to head only when the database is behind it (one cheap query when it is not)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return []
    if current is not None and current not in {rev.revision for rev in _script().walk_revisions()}:
        raise StoreError(
            f"the database at {safe_url(_full_url(engine))} is at schema revision {current!r}, which this "
            f"evaltune (newest {head!r}) does not know; upgrade evaltune or point EVALTUNE_DB_URL elsewhere"
        )
    return upgrade(engine)


class Store:
    """An engine and its session factory. Objects stay readable after their session closes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL with its password masked, safe to print."""
        return safe_url(_full_url(self.engine))

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A session whose work is committed when the block ends, and rolled back if it raises."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self) -> list[str]:
        """Apply pending migrations; see ``upgrade``."""
        return upgrade(self.engine)

    def close(self) -> None:
        """Close pooled connections (open sessions keep working until they end)."""
        self.engine.dispose()


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the store at ``url`` (default ``database_url()``), migrating it to head unless told not to.

    Raises ``StoreError`` with the masked URL and the fix when the URL is bad or the database unreachable.
    """
    store = Store(make_engine(url))
    if upgrade:
        try:
            ensure_current(store.engine)
        except BaseException:
            store.close()
            raise
    return store


def connection_lost(error: BaseException) -> bool:
    """True when ``error`` says the database connection went away (the server stopped or restarted, the
    network dropped), so the same transaction may succeed on a new connection. SQLite has none to lose."""
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error) or not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return False
    state = getattr(error.orig, "sqlstate", None)  # None: the client could not reach the server at all
    return state is None or str(state).startswith(_CONNECTION_STATES)


def conflicted(error: BaseException, lost_race_too: bool = False) -> bool:
    """True when a transaction lost to a concurrent one, so running it again at once may succeed: a PostgreSQL
    serialization failure or deadlock, SQLite's "database is locked" past its busy timeout, and (with
    ``lost_race_too``) a unique-constraint violation, when the caller's next attempt picks something else."""
    if not isinstance(error, exc.DBAPIError):
        return False
    if lost_race_too and isinstance(error, exc.IntegrityError):
        return True
    return getattr(error.orig, "sqlstate", None) in _CONFLICT_STATES or "database is locked" in str(error.orig)


def reconnect_wait_s() -> float:
    """How long a write waits for a lost store to come back: ``$EVALTUNE_RECONNECT_S``, default 30."""
    try:
        return settings.reconnect_seconds(RECONNECT_WAIT_S)
    except settings.SettingError as error:
        raise StoreError(str(error)) from None


def _bound_url(sessions: sessionmaker[Session]) -> str:
    bind = sessions.kw.get("bind")
    return _full_url(bind) if isinstance(bind, Engine) else "the database"


_sqlite_writers: dict[str, threading.RLock] = {}
_sqlite_writers_guard = threading.Lock()


def _one_writer(sessions: sessionmaker[Session]) -> AbstractContextManager[Any]:
    """For a SQLite store, a lock that this process's write transactions on its file take one at a time.

    SQLite lets one connection write at a time; the others wait in its busy handler, which polls the lock with
    growing sleeps (1, 2, 5, ... 50, 100 ms), so under many threads (the rating server: one per browser session)
    a waiter sleeps on long after the writer is done. Threads waiting on this lock are woken the moment it is
    released instead. Other processes on the same file still meet at SQLite's own lock."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return nullcontext()
    key = str(bind.url.database or "")
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(key, threading.RLock())


def in_transaction(
    sessions: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    wait_s: float | None = None,
    hint: str = "rerun the same command to resume",
    lost_race_too: bool = False,
) -> T:
    """Run ``work`` in one transaction, committed when it returns: the store's one retry policy.

    - A lost connection (``connection_lost``) rolled the transaction back: it runs again on a new connection,
      with growing pauses, for up to ``wait_s`` seconds (default ``reconnect_wait_s()``). If the store does not
      come back, raises ``StoreError`` naming the (masked) URL, the cause and ``hint``.
    - A conflict with a concurrent transaction (``conflicted``: deadlock, serialization failure, a locked SQLite
      file, and with ``lost_race_too`` a unique-key race) runs it again at once, up to ``CONFLICT_ATTEMPTS``
      times in all, then raises the last error.
    - On SQLite, this process's transactions on one file run one at a time (``_one_writer``): waiting threads
      are woken when the writer commits instead of sleeping in SQLite's busy handler.
    Every other error rolls back and propagates, so a write either happens or raises. ``work`` must be safe to
    run twice (a commit whose acknowledgement was lost did happen), as inserts that skip stored rows are. What
    happens goes to the ``evaltune.store`` logger (stderr by default).
    """
    wait_s = reconnect_wait_s() if wait_s is None else wait_s
    lost_since: float | None = None
    pause = 0.25
    conflicts = 0
    while True:
        try:
            with _one_writer(sessions), sessions.begin() as session:
                result = work(session)
        except exc.DBAPIError as error:
            if conflicted(error, lost_race_too):
                conflicts += 1
                if conflicts >= CONFLICT_ATTEMPTS:
                    raise
                time.sleep(0.02 * conflicts)
                continue
            if not connection_lost(error):
                raise
            url = _bound_url(sessions)
            cause = _scrub(str(error.orig or error), url)
            if lost_since is None:
                lost_since = time.monotonic()
                _log.warning("lost the connection to the store at %s (%s); retrying for up to %.0f s",
                             safe_url(url), cause, wait_s)
            elif time.monotonic() - lost_since >= wait_s:
                raise StoreError(
                    f"lost the connection to the store at {safe_url(url)} ({cause}) and it did not come back "
                    f"within {wait_s:.0f} s; what was stored before is kept: {hint}"
                ) from None
            time.sleep(min(pause, max(0.0, lost_since + wait_s - time.monotonic())))
            pause = min(pause * 2, 4.0)
            continue
        if lost_since is not None:
            _log.warning("reconnected to the store after %.1f s; the interrupted write was redone",
                         time.monotonic() - lost_since)
        return result
