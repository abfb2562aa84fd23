"""Several ``evaltune worker`` processes racing over one queue of retune jobs: does every job run exactly once?

    python bench/load_workers.py [--jobs 50] [--workers 2] [--backend sqlite|postgres]
                                 [--postgres postgresql+psycopg://USER@HOST:PORT]

The workers are the real command line (``python -m evaltune worker``), one process each, sharing one store and
one ``EVALTUNE_HOME``. Each job is as cheap as a real job can be: a tiny Llama built from a config
(``tests/fixtures/tiny_model.py``), one SFT row, one LoRA step, no re-evaluation; each job has its own seed, so
each trains a different adapter (identical adapters would share one content-addressed model version).
The jobs are queued once every worker is polling, so the workers race from the first claim. Afterwards:
each job succeeded, was claimed once (the workers' own output says who claimed what), trained once (its log),
and has exactly one adapter, registered as one model version that names the job.
Without ``--postgres`` a throwaway PostgreSQL server is started for the run.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import make_url, select

from bench.loadkit import BACKENDS, percentile, store_urls, table
from evaltune.db.engine import Store, open_store
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset, PreferenceRow, RetuneJob
from evaltune.retune import jobs
from evaltune.retune.config import RetuneConfig, SftConfig

CLAIMED = re.compile(r"^job (\d+): claimed by (\S+)$", re.MULTILINE)


@dataclass
class Worker:
    """A running ``evaltune worker`` and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@dataclass
class JobAudit:
    """What the store and the workers' output say about each job."""

    statuses: Counter[str]
    claims: Counter[int]  # job id -> claims announced by the workers
    trainings: Counter[int]  # job id -> "training ..." lines in its log
    adapters: Counter[int]  # job id -> model versions registered for it
    ran_by: Counter[str]  # worker -> jobs it ran (the store's ``worker`` column)
    job_seconds: list[float]  # each job from its claim to its end
    problems: list[str] = field(default_factory=list)


def cheap_config(seed: int) -> RetuneConfig:
    """One LoRA step on one row: the cheapest job that still trains, saves and registers an adapter."""
    return SftConfig(lora_r=2, lora_alpha=4, epochs=1.0, batch_size=1, max_length=32, seed=seed)


def queue_jobs(store: Store, model_dir: Path, count: int) -> list[int]:
    """Register the tiny model as a base version, store a one-row SFT dataset, and queue ``count`` jobs on it."""
    with store.session_scope() as session:
        base = ModelVersion(name="tiny", backend="hf", location=str(model_dir.resolve()),
                            fingerprint=f"tiny-base-{time.time_ns()}")
        dataset = PreferenceDataset(name="one row", strategy="sft", params={"method": "sft"}, counts={"train": 1})
        session.add_all([base, dataset])
        session.flush()
        session.add(PreferenceRow(dataset_id=dataset.id, split="train", prompt="Say yes.", completion="yes"))
        return [jobs.enqueue(session, dataset_id=dataset.id, base_model_id=base.id, config=cheap_config(seed)).id
                for seed in range(count)]


def start_workers(url: str, home: Path, count: int, poll_s: float = 0.5) -> list[Worker]:
    """Start ``count`` ``evaltune worker`` processes on the store at ``url``; wait until each one polls."""
    env = {**os.environ, "EVALTUNE_DB_URL": url, "EVALTUNE_HOME": str(home), "EVALTUNE_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    workers = []
    for number in range(count):
        output = home / f"worker-{number}.log"
        # Default names (host:pid), as a user's workers have: a worker reaps a job whose local worker process is
        # gone, and must never take a live neighbour for a dead one.
        command = [sys.executable, "-m", "evaltune", "worker", "--poll", str(poll_s)]
        with output.open("wb") as sink:
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        workers.append(Worker(f"{socket.gethostname()}:{process.pid}", process, output))
    deadline = time.monotonic() + 120
    while not all(f"worker {w.name} polling" in w.text() for w in workers):
        stopped = [w for w in workers if w.process.poll() is not None]
        if stopped or time.monotonic() > deadline:
            stop_workers(workers)
            raise RuntimeError(f"a worker did not start: {(stopped or workers)[0].text()[-2000:]}")
        time.sleep(0.1)
    return workers


def stop_workers(workers: Sequence[Worker]) -> None:
    """Stop the workers (they poll forever) and wait for them to exit."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGINT)
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def wait_for_jobs(store: Store, job_ids: Sequence[int], workers: Sequence[Worker], timeout_s: float) -> None:
    """Return once every job has finished; raise if a worker exits early or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        with store.sessions() as session:
            open_jobs = session.scalars(select(RetuneJob.id).where(
                RetuneJob.id.in_(job_ids), RetuneJob.status.not_in(jobs.FINISHED))).all()
        if not open_jobs:
            return
        exited = [w for w in workers if w.process.poll() is not None]
        if exited:
            raise RuntimeError(f"worker {exited[0].name} exited early: {exited[0].text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(open_jobs)} jobs still unfinished after {timeout_s:g}s")
        time.sleep(0.5)


def audit_jobs(store: Store, job_ids: Sequence[int], workers: Sequence[Worker]) -> JobAudit:
    """Count, per job, its claims, trainings and registered adapters; list every way it ran other than once."""
    claims: Counter[int] = Counter()
    claimed_by: dict[int, str] = {}
    for worker in workers:
        for job_id, name in CLAIMED.findall(worker.text()):
            claims[int(job_id)] += 1
            claimed_by[int(job_id)] = name
    with store.sessions() as session:
        rows = session.execute(select(RetuneJob.id, RetuneJob.status, RetuneJob.worker, RetuneJob.log,
                                      RetuneJob.output_model_id, RetuneJob.started_at, RetuneJob.finished_at)
                               .where(RetuneJob.id.in_(job_ids))).all()
        versions = session.execute(select(ModelVersion.id, ModelVersion.retune_job_id)
                                   .where(ModelVersion.retune_job_id.in_(job_ids))).all()
    audit = JobAudit(Counter(row.status for row in rows), claims,
                     Counter({row.id: sum(line.startswith("training ") for line in row.log.splitlines())
                              for row in rows}),
                     Counter(job_id for _id, job_id in versions if job_id is not None),
                     Counter(row.worker or "" for row in rows),
                     [(row.finished_at - row.started_at).total_seconds() for row in rows
                      if row.finished_at and row.started_at])
    version_of = {job_id: version_id for version_id, job_id in versions}
    for row in rows:
        once = (claims[row.id], audit.trainings[row.id], audit.adapters[row.id]) == (1, 1, 1)
        if row.status != "succeeded" or not once:
            audit.problems.append(f"job {row.id}: {row.status}, claimed {claims[row.id]}x, trained "
                                  f"{audit.trainings[row.id]}x, {audit.adapters[row.id]} adapters")
        elif row.worker != claimed_by.get(row.id) or row.output_model_id != version_of.get(row.id):
            audit.problems.append(f"job {row.id}: stored worker {row.worker} / version {row.output_model_id}, "
                                  f"but claimed by {claimed_by.get(row.id)} / registered {version_of.get(row.id)}")
    if len(rows) != len(job_ids):
        audit.problems.append(f"{len(job_ids) - len(rows)} queued jobs are missing from the store")
    return audit


@dataclass
class RaceResult:
    backend: str
    workers: list[str]  # their names in the store
    audit: JobAudit
    seconds: float

    def row(self) -> dict[str, Any]:
        jobs_count = sum(self.audit.statuses.values())
        return {
            "backend": self.backend, "workers": len(self.workers), "jobs": jobs_count,
            "succeeded": self.audit.statuses["succeeded"],
            "claimed once": sum(1 for n in self.audit.claims.values() if n == 1),
            "trained once": sum(1 for n in self.audit.trainings.values() if n == 1),
            "one adapter": sum(1 for n in self.audit.adapters.values() if n == 1),
            "jobs per worker": " ".join(str(n) for _name, n in sorted(self.audit.ran_by.items())),
            "job p50 s": percentile(self.audit.job_seconds, 50), "job max s": max(self.audit.job_seconds, default=0.0),
            "seconds": self.seconds, "jobs/s": jobs_count / self.seconds if self.seconds else 0.0,
        }


def race(url: str, model_dir: Path, home: Path, job_count: int, worker_count: int, backend: str = "",
         timeout_s: float = 900) -> RaceResult:
    """Start the workers, queue the jobs, wait for every job to finish, stop the workers, audit."""
    store = open_store(url)  # migrated here, before any worker starts
    try:
        workers = start_workers(url, home, worker_count)
        try:
            started = time.perf_counter()
            job_ids = queue_jobs(store, model_dir, job_count)
            wait_for_jobs(store, job_ids, workers, timeout_s)
            seconds = time.perf_counter() - started
        finally:
            stop_workers(workers)
        audit = audit_jobs(store, job_ids, workers)
        names = [worker.name for worker in workers]
        return RaceResult(backend or make_url(url).get_backend_name(), names, audit, seconds)
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    from tests.fixtures.tiny_model import build_tiny_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="default: both")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (no database); default: start a throwaway one")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder, store_urls(args.backend or BACKENDS, Path(folder),
                                                              args.postgres) as urls:
        model_dir = build_tiny_model(Path(folder) / "tiny-model")
        for backend, url in urls.items():
            home = Path(folder) / f"home-{backend}"
            home.mkdir()
            print(f"{backend}: {args.workers} workers racing over {args.jobs} jobs", flush=True)
            results.append(race(url, model_dir, home, args.jobs, args.workers, backend))
    print(table([result.row() for result in results]))
    for result in results:
        for problem in result.audit.problems:
            print(f"{result.backend}: {problem}")
    return 1 if any(result.audit.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
