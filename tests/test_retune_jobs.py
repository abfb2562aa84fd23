"""The job queue: two workers racing never claim one job twice (SQLite and PostgreSQL); cancel; dead workers."""

from __future__ import annotations

import threading
from datetime import timedelta

from evaltune.db.engine import open_store
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.retune import jobs
from evaltune.retune.config import DpoConfig


def _queue(url: str, count: int) -> list[int]:
    store = open_store(url)
    with store.session_scope() as session:
        base = ModelVersion(name="base", backend="hf", location="/m", fingerprint="fp-base")
        dataset = PreferenceDataset(name="d", strategy="correction", params={}, counts={})
        session.add_all([base, dataset])
        session.flush()
        ids = [jobs.enqueue(session, dataset_id=dataset.id, base_model_id=base.id, config=DpoConfig()).id
               for _ in range(count)]
    store.close()
    return ids


def test_racing_workers_claim_each_job_exactly_once(store_url: str) -> None:
    queued = _queue(store_url, 12)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        store = open_store(store_url, upgrade=False)
        mine = claimed.setdefault(name, [])
        start.wait()
        while True:
            with store.session_scope() as session:
                job = jobs.claim(session, name)
                if job is None:
                    break
                mine.append(job.id)
        store.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == queued  # each job once, none lost
    store = open_store(store_url, upgrade=False)
    with store.session_scope() as session:
        rows = session.query(RetuneJob).all()
        assert {row.status for row in rows} == {"running"}
        assert all(row.id in claimed[row.worker or ""] for row in rows)
    store.close()


def test_cancel_a_queued_job_and_fail_a_job_whose_worker_died() -> None:
    first, second, third = _queue("", 3)
    store = open_store()
    with store.session_scope() as session:
        assert jobs.cancel(session, first) == "cancelled"
        running = jobs.claim(session, "gone-worker")
        assert running is not None and running.id == second
        assert jobs.cancel(session, third) == "cancelled"
    with store.session_scope() as session:
        assert jobs.claim(session, "next") is None  # cancelled jobs are never claimed
        assert jobs.heartbeat(session, second, "gone-worker") is False
        assert jobs.reap_dead(session, timeout=timedelta(minutes=5)) == []
        assert jobs.reap_dead(session, timeout=timedelta(seconds=-1)) == [second]
    with store.session_scope() as session:
        job = session.get(RetuneJob, second)
        assert job is not None and job.status == "failed" and "heartbeat" in (job.error or "")
    store.close()
