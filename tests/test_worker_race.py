"""Real ``evaltune worker`` processes racing over one queue of retune jobs, on SQLite and on PostgreSQL: every job
runs exactly once. The 50-job run is ``bench/load_workers.py``; here fewer jobs keep CI short."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load_workers import race
from bench.loadkit import table

JOBS, WORKERS = 16, 2


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_racing_workers_run_every_job_exactly_once(store_url: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    result = race(store_url, tiny_model_dir, tmp_path, JOBS, WORKERS, timeout_s=360)
    print(f"\n{table([result.row()])}")
    audit = result.audit
    assert audit.problems == []
    assert audit.statuses == {"succeeded": JOBS}
    assert len(audit.claims) == JOBS and set(audit.claims.values()) == {1}  # each job claimed by one worker, once
    assert set(audit.trainings.values()) == {1} and set(audit.adapters.values()) == {1}
    assert sorted(audit.ran_by) == sorted(result.workers)  # each job ran by one of them, and each took part
    assert len(list(tmp_path.glob("adapters/job-*/adapter/adapter_model.safetensors"))) == JOBS
