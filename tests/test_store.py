"""The store on SQLite and PostgreSQL: migrations, schema, every table, the query helpers, safety."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaltune.db import Store, StoreError, metadata, open_store, safe_url
from evaltune.db import queries as q
from evaltune.db.engine import alembic_config, current_revision, database_url, head_revision, make_engine, upgrade
from evaltune.db.evaluation import Generation, ModelVersion, Run, Score, Suite, SuiteItem
from evaltune.db.ratings import Assignment, Rating, User
from evaltune.db.training import PreferenceDataset, PreferenceRow, RetuneJob
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import create_campaign
from tests.fixtures.feedback_seed import rate_campaign

ITEMS = [
    {"key": "q1", "input": "Capital of France?", "references": ["Paris"], "tags": ["geo"]},
    {"key": "q2", "input": [{"role": "user", "content": "2+2?"}], "choices": ["3", "4"], "gold": [1]},
    {"key": "p1", "input": "He is a nurse.", "group": "g1", "attribute": "gender", "value": "m"},
]
METRIC = {
    "name": "exact",
    "scorer": "exact",
    "family": "quality",
    "value": 1.0,
    "ci_low": 0.5,
    "ci_high": 1.0,
    "n": 1,
}


def _model(session: Session, fingerprint: str = "fp-base", **kw: Any) -> ModelVersion:
    fields = {"name": "tiny", "backend": "hf", "location": "/models/tiny", **kw}
    return q.get_or_create_model_version(session, fingerprint=fingerprint, **fields)


def _run(session: Session, fingerprint: str = "run-fp", status: str = "running") -> Run:
    """A run of a three-item suite on a base model."""
    suite = q.get_or_create_suite(session, name="smoke", content_hash="h1", items=ITEMS, scorers=["exact"])
    run = Run(suite=suite, model_version=_model(session), fingerprint=fingerprint, status=status)
    session.add(run)
    session.flush()
    return run


def _generation(run: Run, item: SuiteItem, sample: int = 0, key: str = "", out: str = "x") -> dict[str, Any]:
    key = key or f"k-{item.key}-{sample}"
    return dict(run_id=run.id, item_id=item.id, sample_index=sample, cache_key=key, prompt="p", output=out)


def test_migrations_apply_from_empty_and_are_idempotent(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert current_revision(engine) is None
        applied = upgrade(engine)  # every shipped migration, oldest first
        assert applied[0] == "0001" and applied[-1] == head_revision()
        assert current_revision(engine) == head_revision()
        assert upgrade(engine) == []
        open_store(store_url).close()  # already current: nothing to do, no error
    finally:
        engine.dispose()


def test_reference_logprobs_move_out_of_choice_logprobs_on_upgrade(store_url: str) -> None:
    """Before 0005 one column held two shapes; the upgrade moves the reference pairs and leaves choices."""
    store = open_store(store_url)
    try:
        with store.session_scope() as s:
            run = _run(s)
            text_item, choice_item = run.suite.items[0], run.suite.items[1]
            q.insert_generations(s, [_generation(run, text_item) | {"reference_logprobs": [[-2.5, 3], [-4.0, 5]]},
                                     _generation(run, choice_item) | {"choice_logprobs": [-1.0, -3.0]}])
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
            old = conn.execute(text("SELECT choice_logprobs FROM generations ORDER BY id")).scalars().all()
        assert [json.loads(v) if isinstance(v, str) else v for v in old] == [[[-2.5, 3], [-4.0, 5]], [-1.0, -3.0]]
        upgrade(store.engine)
        with store.session_scope() as s:
            moved, kept = s.scalars(select(Generation).order_by(Generation.id)).all()
            assert (moved.choice_logprobs, moved.reference_logprobs) == (None, [[-2.5, 3], [-4.0, 5]])
            assert (kept.choice_logprobs, kept.reference_logprobs) == ([-1.0, -3.0], None)
    finally:
        store.close()


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            open_store(store_url).close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_and_close) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    with pytest.raises(IntegrityError), store.session_scope() as session:
        session.add(Generation(run_id=999, item_id=999, cache_key="k", prompt="p"))
    store.close()


def test_default_url_is_a_sqlite_file_in_evaltune_home(_private_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert database_url() == f"sqlite:///{_private_home / 'evaltune.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", "postgresql+psycopg://u:p@h/db")
    assert database_url() == "postgresql+psycopg://u:p@h/db"


def _fill_every_table(s: Session) -> dict[str, int]:
    """One row in every table, linked the way the runner, the app and the retune worker link them."""
    run = _run(s)
    item = run.suite.items[0]
    q.insert_generations(s, [_generation(run, item)])
    gen = s.execute(select(Generation)).scalar_one()
    score = {"run_id": run.id, "generation_id": gen.id, "item_id": item.id, "scorer": "exact", "value": 1.0}
    q.insert_scores(s, [{**score, "details": {"matched": "Paris"}}])
    q.replace_run_metrics(s, run.id, ["exact"], [METRIC])
    admin = User(name="ann", role="admin", password_hash="h")
    annotator = User(name="bob", role="annotator", password_hash="h")
    s.add_all([admin, annotator])
    s.flush()
    campaign = create_campaign(s, None, name="c", run_ids=[run.id])  # one item: the run's one output
    bob = Account(annotator.id, annotator.name, annotator.role)
    rate_campaign(s, bob, campaign.id, lambda _task: SingleAnswer(likert=4, hallucination=False))
    dataset = PreferenceDataset(name="d", strategy="correction", campaign_id=campaign.id)
    dataset.rows.append(PreferenceRow(prompt="Capital of France?", chosen="Paris", rejected="x"))
    s.add(dataset)
    s.flush()
    job = RetuneJob(method="dpo", dataset_id=dataset.id, base_model_id=run.model_version_id)
    s.add(job)
    s.flush()
    adapter_fields = {"parent_id": run.model_version_id, "adapter_path": "/a", "adapter_sha256": "0" * 64}
    adapter = _model(s, "fp-adapter", retune_job_id=job.id, **adapter_fields)
    job.output_model_id = adapter.id
    return {"run": run.id, "job": job.id, "dataset": dataset.id}


def test_every_table_takes_a_row_and_relationships_work(store: Store) -> None:
    with store.session_scope() as s:
        ids = _fill_every_table(s)
    with store.session_scope() as s:
        run = s.get_one(Run, ids["run"])
        assert [i.key for i in run.suite.items] == ["q1", "q2", "p1"]
        assert run.suite.items[1].input == [{"role": "user", "content": "2+2?"}]
        assert run.metrics[0].ci_low == 0.5
        assert s.execute(select(Score.details)).scalar_one() == {"matched": "Paris"}
        rating = s.execute(select(Rating)).scalar_one()
        assert rating.user.name == "bob" and rating.likert == 4
        # Aware on both backends, so it compares with now() (SQLite alone would hand back a naive value).
        assert s.execute(select(Assignment.expires_at)).scalar_one() > datetime.now(timezone.utc)
        assert s.get_one(PreferenceDataset, ids["dataset"]).rows[0].chosen == "Paris"
        adapter_id = s.get_one(RetuneJob, ids["job"]).output_model_id
        assert adapter_id is not None
        assert [m.fingerprint for m in q.lineage(s, adapter_id)] == ["fp-adapter", "fp-base"]
        assert [m.fingerprint for m in q.list_model_versions(s)] == ["fp-base", "fp-adapter"]
        assert q.list_runs(s)[0].model_version.fingerprint == "fp-base"
        with pytest.raises(LookupError):
            q.lineage(s, 12345)


def test_get_or_create_is_idempotent_and_checks_items(store: Store) -> None:
    with store.session_scope() as s:
        first = _model(s)
        again = _model(s, name="renamed")
        assert first.id == again.id and again.name == "tiny"
        suite = q.get_or_create_suite(s, name="smoke", content_hash="h1", items=ITEMS)
        same = q.get_or_create_suite(s, name="smoke", content_hash="h1", items=ITEMS)
        assert suite.id == same.id
        assert s.scalar(select(func.count()).select_from(SuiteItem)) == len(ITEMS)
        with pytest.raises(ValueError, match="unknown fields"):
            q.get_or_create_suite(s, name="bad", content_hash="h2", items=[{"key": "a", "input": "x", "colour": 1}])


def test_duplicate_generations_are_skipped_and_resume_sees_them(store: Store) -> None:
    with store.session_scope() as s:
        run = _run(s)
        q1, q2 = run.suite.items[:2]
        q.insert_generations(s, [_generation(run, q1, out="first"), _generation(run, q1, 1)])
        q.insert_generations(s, [_generation(run, q1, out="second"), _generation(run, q2)])
        outputs = s.execute(select(Generation.output).order_by(Generation.id)).scalars().all()
        assert outputs == ["first", "x", "x"]
        assert q.stored_generation_keys(s, run.id) == {(q1.id, 0), (q1.id, 1), (q2.id, 0)}
        assert q.find_resumable_run(s, "run-fp") is not None
        run.status = "completed"
        s.flush()
        assert q.find_resumable_run(s, "run-fp") is None


def test_cached_generations_prefers_completed_runs(store: Store) -> None:
    with store.session_scope() as s:
        done = _run(s, "a", status="completed")
        failed = Run(suite=done.suite, model_version=done.model_version, fingerprint="b", status="failed")
        s.add(failed)
        s.flush()
        item = done.suite.items[0]
        q.insert_generations(s, [_generation(done, item, key="shared", out="from done")])
        q.insert_generations(s, [_generation(failed, item, key="shared", out="from failed")])
        q.insert_generations(s, [_generation(failed, item, 1, key="only-failed")])
        # More keys than one IN (...) chunk holds, most of them unknown.
        keys = [f"missing-{i}" for i in range(1200)] + ["shared", "only-failed"]
        found = q.cached_generations(s, keys)
        assert set(found) == {"shared", "only-failed"}
        assert found["shared"].output == "from done"
        assert set(q.cached_generations(s, keys, exclude_run_id=failed.id)) == {"shared"}


def test_rescoring_replaces_scores(store: Store) -> None:
    with store.session_scope() as s:
        run = _run(s)
        item = run.suite.items[0]
        q.insert_generations(s, [_generation(run, item)])
        gen_id = s.execute(select(Generation.id)).scalar_one()
        per_gen = {"run_id": run.id, "generation_id": gen_id, "item_id": item.id, "scorer": "exact"}
        per_item = {"run_id": run.id, "generation_id": None, "item_id": item.id, "scorer": "consistency"}
        q.insert_scores(s, [{**per_gen, "value": 0.0}, {**per_item, "value": 0.2}])
        q.insert_scores(s, [{**per_gen, "value": 1.0, "details": {"v": 2}}, {**per_item, "value": 0.9}])
        rows = s.execute(select(Score.scorer, Score.value, Score.details).order_by(Score.scorer)).all()
        assert [tuple(r) for r in rows] == [("consistency", 0.9, {}), ("exact", 1.0, {"v": 2})]
        q.replace_run_metrics(s, run.id, ["exact"], [METRIC])
        q.replace_run_metrics(s, run.id, ["exact"], [{**METRIC, "value": 0.5}])
        assert [(m.name, m.value) for m in q.list_runs(s)[0].metrics] == [("exact", 0.5)]


def test_session_scope_rolls_back_everything_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session_scope() as s:
        run = _run(s)
        q.insert_generations(s, [_generation(run, run.suite.items[0])])
        raise RuntimeError("crash mid-run")
    with store.session_scope() as s:
        for table in (Suite, SuiteItem, ModelVersion, Run, Generation):
            assert s.scalar(select(func.count()).select_from(table)) == 0, table.__name__


def test_savepoint_rollback_keeps_the_outer_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session_scope() as s:
        with s.begin_nested():  # the first statement of the transaction is the SAVEPOINT
            s.add(User(name="kept-until-outer-rollback", role="viewer", password_hash="h"))
        with pytest.raises(IntegrityError), s.begin_nested():
            s.add(User(name="kept-until-outer-rollback", role="viewer", password_hash="h"))
        assert s.scalar(select(func.count()).select_from(User)) == 1
        raise RuntimeError("abandon the whole transaction")
    with store.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_safe_url_masks_passwords() -> None:
    assert safe_url("postgresql+psycopg://ann:s3cr%40t@db:5432/e") == "postgresql+psycopg://ann:***@db:5432/e"
    assert safe_url("postgresql://db/e?user=ann&password=s3cret") == "postgresql://db/e?user=ann&password=***"
    assert safe_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://ann:s3cret@127.0.0.1:{port}/evaltune",
            "postgresql+psycopg://ann:***@127.0.0.1:",
        ),
        ("nosuchdb://ann:s3cret@host/x", "nosuchdb://ann:***@host/x"),
        ("ann:s3cret@", "ann:***@"),
    ],
)
def test_bad_or_unreachable_url_gives_a_store_error_without_the_password(url: str, shown: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as caught:
        open_store(url.format(port=port))
    message = str(caught.value)
    assert "s3cret" not in message and "s3cret" not in repr(caught.value.__cause__)
    assert shown in message and "EVALTUNE_DB_URL" in message


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's error carries when PostgreSQL picks this transaction as the victim


def test_one_retry_policy_redoes_a_transaction_that_lost_to_a_deadlock(store: Store) -> None:
    from sqlalchemy.exc import OperationalError

    from evaltune.db.engine import in_transaction

    tries: list[int] = []

    def work(session: Session) -> int:
        tries.append(1)
        _run(session, fingerprint=f"deadlock-{len(tries)}")
        if len(tries) == 1:
            raise OperationalError("UPDATE ...", {}, _Deadlock("deadlock detected"))
        return len(tries)

    assert in_transaction(store.sessions, work) == 2
    with store.session_scope() as s:  # the first attempt was rolled back, the second committed
        assert [r.fingerprint for r in s.scalars(select(Run))] == ["deadlock-2"]


def test_a_transaction_that_keeps_conflicting_gives_up_with_the_error(store: Store) -> None:
    from sqlalchemy.exc import OperationalError

    from evaltune.db.engine import CONFLICT_ATTEMPTS, in_transaction

    tries: list[int] = []

    def work(session: Session) -> None:
        tries.append(1)
        raise OperationalError("UPDATE ...", {}, _Deadlock("deadlock detected"))

    with pytest.raises(OperationalError):
        in_transaction(store.sessions, work)
    assert len(tries) == CONFLICT_ATTEMPTS
