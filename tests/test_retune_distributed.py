"""The same training under ``accelerate launch`` with 2 CPU processes (DDP over gloo): it trains, loss goes down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.retune_seed import write_dpo_rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_process_gloo_training_lowers_the_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    accelerate = Path(sys.executable).parent / "accelerate"
    out = tmp_path / "out"
    rows = write_dpo_rows(tmp_path / "rows.jsonl")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               "-m", "evaltune.retune.accelerate_entry", "--base", str(tiny_model_dir), "--data", str(rows),
               "--output", str(out), "--epochs", "2", "--batch-size", "4"]
    env = {**os.environ, "EVALTUNE_THREADS": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "history.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    losses = [entry["loss"] for entry in summary["history"] if "loss" in entry]
    assert len(losses) == 8  # 32 rows / (2 processes x 4 per process) x 2 epochs: the batches were sharded
    assert sum(losses[-2:]) < sum(losses[:2])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
