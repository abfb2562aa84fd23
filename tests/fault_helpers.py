"""Shared pieces of the fault tests: kill -9 a process at the right moment, read counts from a store, run a
PostgreSQL server of our own that a test may stop and start again, and a rating loop to kill mid-write.

The rating loop runs as its own process: ``python -m tests.fault_helpers rate URL CAMPAIGN USER_ID NAME N``.
It stores ratings through the same call as the Rate page's submit button (``in_transaction`` around
``submit_rating``) and prints ``stored rating R`` only after the commit, as the page shows "Rating saved."
only after it; the N-th rating (counted from 0) stops inside its transaction, after its INSERT and before
its commit, and prints ``writing`` so that the test kills it there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from evaltune.db.engine import Store, open_store

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The shared test server trades durability for speed (fsync and synchronous_commit off), so a crash
# (stop -m immediate) may lose commits it had acknowledged. A server that a test crashes on purpose must
# keep what it acknowledged, as a production server does.
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


def evaltune(*args: str) -> list[str]:
    """The command line of ``evaltune ARGS`` run by this Python."""
    return [sys.executable, "-m", "evaltune", *args]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in the project folder with its stdout and stderr going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def wait_for(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path,
             timeout_s: float = 180) -> None:
    """Poll ``ready()`` until true; fails if ``process`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"it exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path,
              timeout_s: float = 180) -> None:
    """Wait until ``ready()``, then kill -9 ``process`` and reap it."""
    wait_for(process, ready, what, log, timeout_s)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@contextmanager
def opened(url: str) -> Iterator[Store]:
    store = open_store(url, upgrade=False)
    try:
        yield store
    finally:
        store.close()


def read(url: str, work: Callable[[Session], Any]) -> Any:
    """``work(session)`` on a short read-only session of the store at ``url``."""
    with opened(url) as store, store.sessions() as session:
        return work(session)


def scalar(url: str, statement: Select[Any]) -> Any:
    return read(url, lambda session: session.scalar(statement))


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class PostgresServer:
    """A PostgreSQL server of this test's own, so that stopping it disturbs no other test."""

    pg_ctl: str
    data: Path
    workdir: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, password: str = "") -> str:
        """A SQLAlchemy URL for ``database`` (``trust`` auth: any password is accepted, and must never show)."""
        user = f"postgres:{password}" if password else "postgres"
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a fixed test name, not user input

    def start(self) -> None:
        """Start (again) on the same port and data folder; returns once it accepts connections."""
        from tests.fixtures.postgres import _run, _wait_until_ready

        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.workdir}"
        _run([self.pg_ctl, "-D", str(self.data), "-l", str(self.workdir / "server.log"),
              "-o", f"{options} {DURABLE}", "-w", "-t", "60", "start"])
        _wait_until_ready(self.admin_url)

    def stop(self, mode: str) -> None:
        """``pg_ctl stop -m fast`` (clients are disconnected, clean shutdown) or ``-m immediate`` (a crash)."""
        from tests.fixtures.postgres import _run

        _run([self.pg_ctl, "-D", str(self.data), "-w", "stop", "-m", mode])


@contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server on a free port; skipped (failed in CI) where PostgreSQL is not installed."""
    from tests.fixtures.postgres import _free_port, _make_workdir, _run, _unavailable, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    workdir = _make_workdir()
    server = PostgresServer(str(pg_bin / "pg_ctl"), workdir / "data", workdir, _free_port())
    try:
        _run([str(pg_bin / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--no-sync"])
        server.start()
        yield server
    finally:
        from tests.fixtures.postgres import _as_postgres

        stop = [server.pg_ctl, "-D", str(server.data), "stop", "-m", "immediate"]
        subprocess.run(_as_postgres(stop), capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _rate(url: str, campaign_id: int, user_id: int, name: str, pause_at: int) -> None:
    from evaltune.feedback_ui.answers import SingleAnswer
    from evaltune.feedback_ui.auth import Account
    from evaltune.feedback_ui.queue import claim_next, submit_rating
    from evaltune.feedback_ui.transactions import in_transaction

    store = open_store(url, upgrade=False)
    account = Account(user_id, name, "annotator")
    for number in range(1_000_000):
        reservation = in_transaction(store, lambda s: claim_next(s, account, campaign_id))
        if reservation is None:
            print("nothing left", flush=True)
            return
        answer = SingleAnswer(likert=1 + number % 5, hallucination=False, comment=f"rating {number}")

        def submit(session: Session, number: int = number, assignment: int = reservation.assignment_id,
                   answer: SingleAnswer = answer) -> int:
            rating_id = submit_rating(session, account, assignment, answer)
            if number == pause_at:
                session.flush()
                print(f"writing assignment {assignment}", flush=True)
                time.sleep(600)  # killed here: the rating is inserted, not committed
            return rating_id

        rating_id = in_transaction(store, submit)
        print(f"stored rating {rating_id} item {reservation.campaign_item_id}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["rate"] or len(sys.argv) != 7:
        sys.exit("usage: python -m tests.fault_helpers rate URL CAMPAIGN_ID USER_ID USER_NAME PAUSE_AT")
    _rate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
