"""Faults during ``evaltune run`` (a real subprocess on a tiny model): kill -9 of the runner on SQLite and
PostgreSQL, and the PostgreSQL server stopped under it, briefly (the run rides it out) or for good (the run
stops with one line, and the same command resumes). Afterwards nothing is lost, duplicated or regenerated.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from evaltune.cli import cli
from evaltune.db import queries
from evaltune.db.engine import Store, StoreError, in_transaction, make_engine, open_store
from evaltune.db.evaluation import Generation, Run, Score, Suite
from evaltune.evaluate import EvaluateRequest, evaluate
from tests.fault_helpers import evaltune, kill_when, last_line, opened, own_postgres, read, start, wait_for
from tests.fixtures.postgres import _free_port

ITEMS = 48
FIRST = 12  # outputs stored before the fault
SCORERS = ["exact_match", "token_f1"]
SECRET = "s3cret-Pw"  # in the URL of the PostgreSQL tests: it must never be printed

Outputs = dict[tuple[int, int], tuple[int, str]]  # (item row, sample) -> (generation id, output)


def _suite(folder: Path) -> Path:
    path = folder / "faults.yaml"
    items = [{"id": f"q{i:03d}", "input": f"Question number {i}: what comes next?", "references": ["x"]}
             for i in range(ITEMS)]
    generation = {"max_new_tokens": 32, "temperature": 0.0, "batch_size": 2}
    path.write_text(yaml.safe_dump({"name": "faults", "generation": generation, "scorers": SCORERS,
                                    "items": items}))
    return path


def _command(suite: Path, model: Path) -> list[str]:
    return evaltune("run", str(suite), "--model", str(model))


def _env(url: str, **extra: str) -> dict[str, str]:
    return os.environ | {"EVALTUNE_DB_URL": url, "EVALTUNE_THREADS": "1"} | extra


def _outputs(url: str) -> Outputs:
    return read(url, lambda s: {(g.item_id, g.sample_index): (g.id, g.output) for g in s.scalars(select(Generation))})


def _runs(url: str) -> list[tuple[int, str]]:
    return read(url, lambda s: list(s.execute(select(Run.id, Run.status)).tuples()))


def _at_least(store: Store, count: int) -> Callable[[], bool]:
    def ready() -> bool:
        with store.sessions() as session:
            return (session.scalar(select(func.count()).select_from(Generation)) or 0) >= count

    return ready


def _check_complete(url: str, before: Outputs) -> None:
    """One completed run with every output exactly once, the ones stored before the fault unchanged."""
    after = _outputs(url)
    runs = _runs(url)
    assert len(runs) == 1 and runs[0][1] == "completed", runs
    assert len(after) == ITEMS
    assert read(url, lambda s: s.scalar(select(func.count()).select_from(Generation))) == ITEMS  # no duplicates
    assert all(after[key] == value for key, value in before.items())  # nothing regenerated or rewritten
    scores = read(url, lambda s: s.scalar(select(func.count()).select_from(Score)))
    assert scores == ITEMS * len(SCORERS)


def _rerun(command: list[str], url: str, run_id: int, stored_before: int) -> None:
    """The same command again (in this process: the model is loaded faster), which resumes the run."""
    args = command[command.index("run"):]
    done = CliRunner().invoke(cli, args, env={"EVALTUNE_DB_URL": url}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"run {run_id}: suite faults on " in done.stdout and "(resumed)" in done.stdout
    missing = ITEMS - stored_before
    assert f"outputs: {ITEMS} ({missing} generated, 0 from cache, {stored_before} already stored)" in done.stdout


def test_a_run_killed_mid_way_resumes_and_stores_only_what_was_missing(
    store_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    suite, log = _suite(tmp_path), tmp_path / "victim.log"
    command, env = _command(suite, tiny_model_dir), _env(store_url)
    open_store(store_url).close()  # migrated before the victim starts, so the test can poll it
    victim = start(command, env, log)
    with opened(store_url) as store:
        kill_when(victim, _at_least(store, FIRST), f"{FIRST} outputs were stored", log)
    before = _outputs(store_url)
    assert FIRST <= len(before) < ITEMS
    [(run_id, status)] = _runs(store_url)
    assert status == "running"  # a killed run is left as it was, to be resumed
    _rerun(command, store_url, run_id, len(before))
    _check_complete(store_url, before)


@pytest.mark.postgres
def test_a_run_rides_out_a_postgresql_restart(tiny_model_dir: Path, tmp_path: Path) -> None:
    suite, log = _suite(tmp_path), tmp_path / "run.log"
    with own_postgres() as server:
        server.create_database("faults")
        url = server.url("faults", password=SECRET)
        open_store(url).close()
        runner = start(_command(suite, tiny_model_dir), _env(url), log)
        with opened(url) as store:
            wait_for(runner, _at_least(store, FIRST), f"{FIRST} outputs were stored", log)
        before = _outputs(url)
        server.stop("immediate")  # a crash: connections drop, nothing is flushed politely
        assert runner.poll() is None, "the run finished before the server stopped: make the suite longer"
        time.sleep(3)  # long enough for the runner to try to write while the server is away
        server.start()
        assert runner.wait(timeout=300) == 0, log.read_text()
        output = log.read_text()
        masked = f"postgresql+psycopg://postgres:***@127.0.0.1:{server.port}/faults"
        assert f"lost the connection to the store at {masked}" in output
        assert "reconnected to the store after" in output
        assert "the store lost" not in output  # a durable server keeps what it confirmed, even through a crash
        assert SECRET not in output and "Traceback" not in output
        _check_complete(url, before)


@pytest.mark.postgres
def test_a_run_whose_store_stays_away_stops_with_one_line_and_resumes_later(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    suite, log = _suite(tmp_path), tmp_path / "run.log"
    with own_postgres() as server:
        server.create_database("faults")
        url = server.url("faults", password=SECRET)
        open_store(url).close()
        command, env = _command(suite, tiny_model_dir), _env(url, EVALTUNE_RECONNECT_S="2")
        runner = start(command, env, log)
        with opened(url) as store:
            wait_for(runner, _at_least(store, FIRST), f"{FIRST} outputs were stored", log)
        server.stop("fast")
        assert runner.poll() is None, "the run finished before the server stopped: make the suite longer"
        assert runner.wait(timeout=120) == 2, log.read_text()
        output = log.read_text()
        masked = f"postgresql+psycopg://postgres:***@127.0.0.1:{server.port}/faults"
        message = last_line(output)
        assert message.startswith(f"error: lost the connection to the store at {masked} ("), output
        assert message.endswith("did not come back within 2 s; what was stored before is kept: "
                                "rerun the same command to resume"), output
        assert SECRET not in output and "Traceback" not in output

        server.start()
        before = _outputs(url)
        [(run_id, status)] = _runs(url)
        assert status == "running" and FIRST <= len(before) < ITEMS
        _rerun(command, url, run_id, len(before))
        _check_complete(url, before)


def test_a_lost_connection_is_retried_then_reported_with_the_password_hidden(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the port: every attempt fails at once, as while a server restarts."""
    port = _free_port()
    engine = make_engine(f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{port}/faults")
    sessions = sessionmaker(engine)
    started = time.monotonic()
    with pytest.raises(StoreError) as caught, caplog.at_level(logging.WARNING, "evaltune.store"):
        in_transaction(sessions, lambda s: s.execute(text("SELECT 1")), wait_s=1)
    assert 1 <= time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"lost the connection to the store at postgresql+psycopg://postgres:***@127.0.0.1:{port}/")
    assert message.endswith("did not come back within 1 s; what was stored before is kept: "
                            "rerun the same command to resume")
    assert "retrying for up to 1 s" in caplog.text
    assert SECRET not in message + caplog.text


def test_a_write_interrupted_by_a_lost_connection_is_redone_once_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    attempts = []

    def work(session: Session) -> int:
        attempts.append(1)
        session.add(Suite(name="s", content_hash=f"h{len(attempts)}"))
        if len(attempts) < 3:  # the connection drops mid-transaction, twice
            raise OperationalError("INSERT", {}, Exception("server closed the connection"),
                                   connection_invalidated=True)
        return len(attempts)

    with caplog.at_level(logging.WARNING, "evaltune.store"):
        assert in_transaction(store.sessions, work, wait_s=10) == 3
    assert "lost the connection to the store at sqlite:///" in caplog.text
    assert "reconnected to the store after" in caplog.text
    with store.sessions() as session:
        assert session.scalars(select(Suite.content_hash)).all() == ["h3"]  # the failed attempts left nothing
    store.close()


def test_outputs_the_store_lost_after_confirming_them_are_made_again(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that crashes without durable commits forgets what it confirmed; the run must not complete
    with a hole in it."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    insert = queries.insert_generations
    forgotten: list[object] = []

    def forgetful(session: Session, rows: list[dict[str, object]]) -> None:
        if rows and not forgotten:
            forgotten.extend(rows)  # "committed", then lost in the crash
            return
        insert(session, rows)

    monkeypatch.setattr(queries, "insert_generations", forgetful)
    request = EvaluateRequest(suite=str(_suite(tmp_path)), model=str(tiny_model_dir), limit=6)
    with caplog.at_level(logging.WARNING, "evaltune.run"):
        outcome = evaluate(request, status=lambda _: None).outcome
    assert len(forgotten) == 2
    assert "the store lost 2 outputs of run 1 after confirming them" in caplog.text
    assert read(url, lambda s: s.scalar(select(func.count()).select_from(Generation))) == 6
    assert _runs(url) == [(outcome.run_id, "completed")]
