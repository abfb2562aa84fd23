"""retune.train on its own: a rerun resumes from the last checkpoint; a cancel stops at the next step."""

from __future__ import annotations

from pathlib import Path

import torch

from evaltune.retune.config import SftConfig
from evaltune.retune.train import train

torch.set_num_threads(1)
SYSTEM = {"role": "system", "content": "Answer briefly."}
ROWS = [{"prompt": [SYSTEM, {"role": "user", "content": f"Who founded town {i}?"}],
         "completion": [{"role": "assistant", "content": "I don't know."}]} for i in range(16)]


def test_a_rerun_resumes_from_the_last_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = SftConfig(epochs=1, batch_size=8, report_to=("no-such-tracker",))
    lines: list[str] = []
    first = train(str(tiny_model_dir), ROWS, config, tmp_path, log=lines.append)
    assert (first.adapter_dir / "adapter_model.safetensors").is_file()
    assert any("no-such-tracker" in line and "not installed" in line for line in lines)
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()
    lines.clear()
    train(str(tiny_model_dir), ROWS, config, tmp_path, log=lines.append)
    assert any(line.startswith("resuming from") and line.endswith("checkpoint-2") for line in lines)


def test_a_cancel_request_stops_training_after_the_current_step(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = SftConfig(epochs=5, batch_size=4)
    result = train(str(tiny_model_dir), ROWS, config, tmp_path, log=lambda _: None, should_stop=lambda: True)
    assert result.stopped
    steps = [entry["step"] for entry in result.history if "loss" in entry]
    assert steps == [1.0]  # 20 steps planned; stopped after the first
