"""Retune jobs of several processes, queued with ``evaltune retune --processes 2`` and run by the worker under
``accelerate launch`` (DDP over gloo on 2 CPU processes, the tiny model): they train, heartbeat, register the adapter
with its lineage and re-evaluate as a one-process job does; a cancel ends the whole process group; a retry resumes
from the last checkpoint. The engines this machine lacks are refused when queued and again by the worker.

DeepSpeed, FSDP and QLoRA need CUDA GPUs: here their configs are checked as accelerate reads them, and the QLoRA
training test skips, saying why, where there is no CUDA GPU with bitsandbytes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from evaltune.db.engine import Store, open_store
from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import RetuneJob
from evaltune.retune import jobs
from evaltune.retune.config import DpoConfig
from evaltune.retune.launch import CONFIGS, accelerate_config
from evaltune.retune.reevaluate import EvalSettings
from evaltune.retune.worker import WorkerOptions, run_once
from tests.conftest import Cli
from tests.fixtures.retune_seed import write_dpo_rows, write_suite

torch.set_num_threads(1)
ROWS = 16  # 2 processes x batch 4: 2 optimiser steps per epoch
TWO_CPU_PROCESSES = ("--processes", "2", "--device", "cpu", "--batch-size", "4")


def _job(store: Store, job_id: int = 1) -> RetuneJob:
    with store.sessions() as session:
        return session.get_one(RetuneJob, job_id, populate_existing=True)


def _worker(home: Path) -> WorkerOptions:
    return WorkerOptions(home=home, name="test-worker", heartbeat_s=0.3, eval=EvalSettings(threads=2))


def _in_background(work: Callable[[], object]) -> threading.Thread:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # re-raised by the test through the thread's ``failures``
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def _wait(ready: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _live_members(group: int) -> list[int]:
    """The processes of a process group that are still running (zombies awaiting a reaper do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _group(log: str) -> int:
    found = re.search(r"launched 2 training processes \(DDP, accelerate launch; process group (\d+)\)", log)
    assert found, log
    return int(found.group(1))


def test_a_two_process_job_trains_heartbeats_registers_its_lineage_and_re_evaluates(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path, _private_home: Path
) -> None:
    suite = write_suite(tmp_path)
    assert cli("run", str(suite), "--model", str(tiny_model_dir))[0] == 0  # the base's run, to compare with
    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", ROWS)))[0] == 0
    code, out, err = cli("retune", "--model", str(tiny_model_dir), "--dataset", "1", "--epochs", "1",
                         *TWO_CPU_PROCESSES, "--eval-after", str(suite))
    assert code == 0 and "job 1 queued: dpo on dataset 1" in out, err
    store = open_store()
    assert _job(store).config["processes"] == 2

    worker = _in_background(lambda: run_once(store, _worker(_private_home)))
    _wait(lambda: "launched 2 training processes" in _job(store).log, "the launch")
    beats = set()
    while "trained in" not in (job := _job(store)).log and worker.is_alive():
        beats.add(job.heartbeat_at)
        time.sleep(0.1)
    worker.join(timeout=300)
    assert not worker.failures, worker.failures  # type: ignore[attr-defined]
    assert len(beats) >= 2, beats  # the worker heartbeat while the launched processes trained

    job = _job(store)
    assert job.status == "succeeded", job.log
    assert re.search(r"^step 2 of 2: loss \d", job.log, re.M), job.log  # rank 0's lines, once each
    assert job.log.count("step 1 of 2:") == 1
    summary = json.loads((_private_home / "adapters" / "job-1" / "history.json").read_text())
    assert (summary["world_size"], summary["backend"]) == (2, "gloo")
    assert len([entry for entry in summary["history"] if "loss" in entry]) == 2  # 16 rows / (2 x 4) per step
    with store.sessions() as session:
        adapter = session.get_one(ModelVersion, job.output_model_id)
        assert adapter.parent_id == job.base_model_id and adapter.retune_job_id == 1
        assert adapter.details["processes"] == 2
    (follow_up,) = job.follow_up_run_ids
    assert re.search(rf"compare run 1 -> {follow_up}: abstention", job.log), job.log
    code, traced, _ = cli("lineage", f"run:{follow_up}")
    assert code == 0 and f"parent model:{job.base_model_id}" in traced
    assert "made by retune job 1: dpo, succeeded" in traced and "from dataset 1 " in traced
    code, shown, _ = cli("jobs", "show", "1")
    assert "processes 2, deepspeed , fsdp False" in shown and "launched 2 training processes (DDP" in shown
    store.close()


def test_cancel_ends_the_process_group_and_a_retry_resumes_from_the_last_checkpoint(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path, _private_home: Path
) -> None:
    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", ROWS)))[0] == 0
    epochs = 60  # 120 steps of a few tens of ms: the cancel lands well before the last one on a quiet machine too
    code, _, err = cli("retune", "--model", str(tiny_model_dir), "--dataset", "1", "--epochs", str(epochs),
                       "--save-steps", "2", *TWO_CPU_PROCESSES)
    assert code == 0, err
    store = open_store()
    checkpoints = _private_home / "adapters" / "job-1" / "checkpoints"
    worker = _in_background(lambda: run_once(store, _worker(_private_home)))
    _wait(lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")), "a complete checkpoint")
    group = _group(_job(store).log)
    assert _live_members(group)
    assert "job 1: cancel requested" in cli("jobs", "cancel", "1")[1]
    worker.join(timeout=120)
    assert not worker.failures, worker.failures  # type: ignore[attr-defined]
    cancelled = _job(store)
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled while training"), cancelled.log
    assert f"stopping the training processes (process group {group})" in cancelled.log
    assert _live_members(group) == []  # the launcher, its agent and both ranks: none is left

    assert cli("jobs", "retry", "1")[0] == 0
    saved = max(int(path.parent.name.split("-")[1]) for path in checkpoints.glob("checkpoint-*/trainer_state.json"))
    assert run_once(store, _worker(_private_home)) == 1
    job = _job(store)
    assert job.status == "succeeded", job.log
    resumed = re.findall(r"resuming from \S+checkpoint-(\d+)", job.log)
    assert resumed and int(resumed[-1]) == saved, job.log
    summary = json.loads((_private_home / "adapters" / "job-1" / "history.json").read_text())
    steps = [int(entry["step"]) for entry in summary["history"] if "loss" in entry]
    assert saved < 2 * epochs, saved  # the cancel came before the last step, so there was something left to resume
    assert steps[0] == saved + 1 and steps[-1] == 2 * epochs, steps  # it went on from the checkpoint, not from step 1
    store.close()


def test_a_worker_without_the_engine_fails_a_job_queued_elsewhere_in_one_line(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", ROWS)))[0] == 0
    store = open_store()
    with store.session_scope() as session:  # as a machine with a GPU and bitsandbytes queued it
        base = ModelVersion(name="tiny", backend="hf", location=str(tiny_model_dir), fingerprint="tiny")
        session.add(base)
        session.flush()
        jobs.enqueue(session, dataset_id=1, base_model_id=base.id, config=DpoConfig(qlora=True))
    store.close()
    code, out, _ = cli("worker", "--once")
    assert code == 1
    assert re.search(r"job 1 failed: QLoRA needs a CUDA GPU and bitsandbytes.*this worker \(\S+\) cannot run job 1",
                     out), out


@pytest.mark.parametrize("engine", ["ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_each_shipped_accelerate_config_is_one_accelerate_reads_with_the_jobs_values_filled_in(
    engine: str, tmp_path: Path
) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    config = DpoConfig(processes=4, deepspeed=engine.removeprefix("deepspeed_") if "zero" in engine else "",
                       fsdp=engine == "fsdp")
    values = accelerate_config(config, 29517, "bf16")
    assert (CONFIGS / f"{engine}.yaml").is_file()
    assert (values["num_processes"], values["main_process_port"], values["mixed_precision"]) == (4, 29517, "bf16")
    import yaml

    written = tmp_path / "accelerate.yaml"
    written.write_text(yaml.safe_dump(values))
    read = ClusterConfig.from_yaml_file(str(written))  # refuses keys this accelerate does not know
    assert read.num_processes == 4
    assert str(read.distributed_type).endswith({"ddp": "MULTI_GPU", "fsdp": "FSDP"}.get(engine, "DEEPSPEED"))
    if engine == "fsdp":  # PEFT's FSDP guide: LoRA needs use_orig_params false to save memory
        assert values["fsdp_config"]["fsdp_use_orig_params"] is False


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None,
                    reason="QLoRA needs a CUDA GPU and bitsandbytes; this machine has not both")
def test_qlora_trains_an_adapter_on_a_4_bit_base_in_bf16(tiny_model_dir: Path, tmp_path: Path) -> None:
    from evaltune.retune.train import precision, train

    records = [json.loads(line) for line in write_dpo_rows(tmp_path / "pairs.jsonl", ROWS).read_text().splitlines()]
    config = DpoConfig(qlora=True, epochs=1, batch_size=4)
    result = train(str(tiny_model_dir), records, config, tmp_path / "out", log=lambda _line: None)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert precision(config) == ("bfloat16" if torch.cuda.is_bf16_supported() else "float32")
    assert [entry["loss"] for entry in result.history if "loss" in entry]


def test_a_launched_training_that_fails_fails_the_job_in_one_line_with_the_processes_output_kept(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", ROWS)))[0] == 0
    code, _, err = cli("retune", "--model", str(tiny_model_dir), "--dataset", "1", "--epochs", "1",
                       "--lora-target-modules", "no_such_proj", *TWO_CPU_PROCESSES)
    assert code == 0, err
    code, out, _ = cli("worker", "--once")
    assert code == 1 and "job 1 failed: training failed: the training processes exited with code" in out, out
    job = _job(open_store())
    assert job.status == "failed" and job.error is not None
    assert re.fullmatch(r"training failed: the training processes exited with code \d+: \w*Error: .*no_such_proj.*; "
                        r"'evaltune jobs show 1 --traceback' shows the processes' output, and 'evaltune jobs retry 1' "
                        r"resumes from the last checkpoint", job.error), job.error
    assert job.traceback is not None and "no_such_proj" in job.traceback.split("\n\nTraceback")[0]
