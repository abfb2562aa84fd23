"""kill -9 of ``evaltune worker`` while it trains (a real subprocess, a tiny model), on SQLite and PostgreSQL.

Afterwards ``evaltune jobs`` says the worker is gone, the next worker fails the job with a message naming the
dead worker and runs the next queued job, ``evaltune jobs retry`` queues the failed one again, and its training
resumes from the last complete checkpoint. No adapter is ever half-registered: every registered adapter folder
is complete (its sha256 matches), and every adapter folder belongs to exactly one registered model version.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from evaltune.cli import cli
from evaltune.db.base import utcnow
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset, PreferenceRow, RetuneJob
from evaltune.errors import UserError
from evaltune.harness.backends.hf import adapter_sha256
from evaltune.retune import jobs
from evaltune.retune.config import DpoConfig
from tests.fault_helpers import evaltune, kill_when, opened, read, start

ROWS = 16  # 2 steps per epoch at batch size 8


def _seed(url: str, model_dir: Path) -> None:
    """A base model version, a dataset of correction pairs, and two queued jobs: a long one, then a short one."""
    with opened(url) as store, store.session_scope() as session:
        store.upgrade()
        base = ModelVersion(name="tiny", backend="hf", location=str(model_dir), fingerprint="tiny-base")
        dataset = PreferenceDataset(name="faults", strategy="correction")
        session.add_all([base, dataset])
        session.flush()
        session.add_all([
            PreferenceRow(dataset_id=dataset.id, split="train", chosen="I don't know.", rejected=f"Capital {i}.",
                          prompt=[{"role": "user", "content": f"What is the capital of country {i}?"}])
            for i in range(ROWS)
        ])
        for config in (DpoConfig(epochs=8, save_steps=2), DpoConfig(epochs=1)):
            jobs.enqueue(session, dataset_id=dataset.id, base_model_id=base.id, config=config)


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"EVALTUNE_DB_URL": url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _job(url: str, job_id: int) -> RetuneJob:
    return read(url, lambda s: s.get_one(RetuneJob, job_id))


def _a_minute_passes(url: str, job_id: int) -> None:
    """Move the job's last heartbeat a minute back, as if its worker had been silent that long."""
    with opened(url) as store, store.session_scope() as session:
        job = session.get_one(RetuneJob, job_id)
        assert job.heartbeat_at is not None
        job.heartbeat_at -= timedelta(minutes=1)


def _training(url: str, checkpoints: Path) -> bool:
    """Job 1 has logged a training step and written a complete checkpoint: it is mid-training."""
    trained = re.search(r"^step \d+ of \d+: loss ", _job(url, 1).log or "", re.M) is not None
    return trained and any((c / "trainer_state.json").is_file() for c in checkpoints.glob("checkpoint-*"))


def _assert_no_half_registered_adapter(url: str, adapters: Path) -> None:
    versions = read(url, lambda s: list(s.scalars(select(ModelVersion).where(ModelVersion.adapter_path.is_not(None)))))
    registered = {Path(v.adapter_path) for v in versions}
    assert len(registered) == len(versions)  # one version per adapter folder
    for version in versions:
        folder = Path(version.adapter_path)
        assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
        assert adapter_sha256(folder) == version.adapter_sha256
    on_disk = {folder.resolve() for folder in adapters.glob("job-*/adapter")}
    assert on_disk == registered


def test_a_worker_killed_mid_training_leaves_a_clear_failed_job_that_a_retry_finishes(
    store_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    _seed(store_url, tiny_model_dir)
    adapters = Path(os.environ["EVALTUNE_HOME"]) / "adapters"
    log = tmp_path / "worker.log"
    env = os.environ | {"EVALTUNE_DB_URL": store_url, "EVALTUNE_THREADS": "1"}
    victim = start(evaltune("worker", "--once"), env, log)
    dead = f"{socket.gethostname()}:{victim.pid}"
    kill_when(victim, lambda: _training(store_url, adapters / "job-1" / "checkpoints"), "job 1 was training", log)

    assert _job(store_url, 1).status == "running"  # nobody is left to say otherwise, yet
    assert "!" not in _cli(store_url, "jobs", "list")  # a pid gone but a fresh heartbeat: maybe another container
    _a_minute_passes(store_url, 1)
    listing = _cli(store_url, "jobs", "list")
    assert re.search(rf"1  running .*\({re.escape(dead)}\)\n +! worker {re.escape(dead)} died: its process is gone "
                     r"\(last heartbeat \d+ s ago\): the next 'evaltune worker' marks it failed", listing), listing
    assert f"warning: worker {dead} died" in _cli(store_url, "jobs", "show", "1")

    second = _cli(store_url, "worker", "--once")
    assert (f"job 1 marked failed: worker {dead} died: its process is gone" in second
            and "no adapter was registered. Run 'evaltune jobs retry 1' to queue it again" in second), second
    assert "job 2 succeeded: adapter model:" in second
    failed = _job(store_url, 1)
    assert failed.status == "failed" and f"worker {dead} died" in (failed.error or "")
    assert _job(store_url, 2).status == "succeeded"
    assert "failed" in _cli(store_url, "jobs", "list").splitlines()[-1]  # job 1, listed last
    _assert_no_half_registered_adapter(store_url, adapters)

    assert "job 1: queued again" in _cli(store_url, "jobs", "retry", "1")
    assert "job 1 succeeded: adapter model:" in _cli(store_url, "worker", "--once")
    retried = _job(store_url, 1)
    assert retried.status == "succeeded" and retried.error is None and retried.output_model_id is not None
    assert re.search(r"resuming from .*checkpoint-\d+", retried.log), retried.log  # not from scratch
    assert f"queued again (was failed: worker {dead} died" in retried.log
    _assert_no_half_registered_adapter(store_url, adapters)
    assert len(list(adapters.glob("job-*/adapter"))) == 2


def test_a_dead_local_worker_is_reaped_at_once_a_live_or_remote_one_only_after_its_heartbeat_times_out(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    _seed(url, tmp_path)
    finished = subprocess.Popen(["true"])  # a process that has ended: its pid names nobody now
    finished.wait()
    host = socket.gethostname()
    with opened(url) as store, store.session_scope() as session:
        dead = jobs.claim(session, f"{host}:{finished.pid}")
        alive = jobs.claim(session, f"{host}:{os.getpid()}")
        assert dead is not None and alive is not None
        session.add(RetuneJob(status="running", method="dpo", dataset_id=1, base_model_id=1, log="",
                              worker="other-host:1", heartbeat_at=utcnow()))
    with opened(url) as store, store.session_scope() as session:
        assert jobs.reap_dead(session) == []  # its pid is gone, but it heartbeated just now: maybe in a container
    _a_minute_passes(url, dead.id)
    with opened(url) as store, store.session_scope() as session:
        assert jobs.reap_dead(session) == [dead.id]  # the other host's worker may be alive: wait for its heartbeat
        assert jobs.reap_dead(session, timeout=timedelta(seconds=-1)) == [alive.id, 3]
    failed = _job(url, dead.id)
    assert failed.error is not None and failed.error.startswith(f"worker {host}:{finished.pid} died: its process")
    assert re.search(rf"failed: worker {host}:{finished.pid} died: its process is gone \(last heartbeat \d+ s ago\)\n$",
                     failed.log), failed.log


def test_only_a_failed_or_cancelled_job_can_be_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    _seed(url, tmp_path)
    result = CliRunner().invoke(cli, ["jobs", "retry", "1"], env={"EVALTUNE_DB_URL": url})
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "job 1 is queued; only a failed or cancelled job can be retried"
    assert "job 2: cancelled" in _cli(url, "jobs", "cancel", "2")
    assert "job 2: queued again" in _cli(url, "jobs", "retry", "2")
    job = _job(url, 2)
    assert (job.status, job.cancel_requested, job.finished_at) == ("queued", False, None)
    assert job.log.endswith("queued again (was cancelled: cancelled)\n")
