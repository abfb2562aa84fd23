"""The retune commands in-process: data build/export, retune, worker --once, jobs, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from evaltune.cli import cli
from evaltune.db.engine import open_store
from tests.fixtures.retune_seed import rate_base_run

torch.set_num_threads(1)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_retune_commands_from_ratings_to_lineage(tiny_model_dir: Path, tmp_path: Path) -> None:
    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    store.close()
    built = run("data", "build", "--campaign", str(rated.campaign_id), "--strategy", "correction",
                "--holdout", "0")
    assert built.startswith("dataset 1 (correction): 16 train rows")
    exported = tmp_path / "rows.jsonl"
    run("data", "export", "1", "-o", str(exported))
    first = json.loads(exported.read_text().splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected"} and first["prompt"][0]["role"] == "system"

    queued = run("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1", "--epochs", "1",
                 "--eval-after", str(rated.suite_path))
    assert "job 1 queued: dpo on dataset 1" in queued
    second = run("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1")
    assert "job 2 queued" in second
    assert "job 2: cancelled" in run("jobs", "cancel", "2")
    assert "job 1 done" in run("worker", "--once")
    assert "no queued jobs" in run("worker", "--once")

    listing = run("jobs", "list")
    assert "succeeded" in listing and "cancelled" in listing
    shown = run("jobs", "show", "1")
    assert "adapter: model:" in shown and '"loss"' in shown
    traced = run("lineage", f"run:{rated.base_run_id + 1}")
    assert "made by retune job 1: dpo, succeeded" in traced
    assert "from 16 ratings of campaign 1 (0 simulated)" in traced
    assert f"parent model:{rated.base_model_id}" in traced
