"""The retune commands in-process: data build/list/export, retune, worker --once, jobs, lineage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evaltune.cli import cli
from evaltune.db.engine import open_store
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.retune.jobs import MIN_TRAIN_ROWS
from evaltune.retune.worker import failure_message
from tests.conftest import invoke_main
from tests.fixtures.retune_seed import rate_base_run

torch.set_num_threads(1)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading any model (weights or endpoint) fail the test: queueing must not load one."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("evaltune.harness.model_resolution.ResolvedModel.load", refuse)


def test_the_retune_commands_from_ratings_to_lineage(tiny_model_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    store.close()
    built = run("data", "build", "--campaign", str(rated.campaign_id), "--strategy", "correction",
                "--holdout", "0")
    assert built.startswith("dataset 1 (correction): 16 train rows")
    listed = run("data", "list")
    assert re.search(r"1  campaign 1 correction  correction -> dpo, campaign 1: 16 train, 0 held out", listed)
    assert "!" not in listed  # usable: no warning line
    exported = tmp_path / "rows.jsonl"
    run("data", "export", "1", "-o", str(exported))
    first = json.loads(exported.read_text().splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected"} and first["prompt"][0]["role"] == "system"

    with monkeypatch.context() as queueing:  # the base is named by folder: checked, not loaded
        _no_model_loads(queueing)
        queued = run("retune", "--model", str(tiny_model_dir), "--dataset", "1", "--epochs", "1",
                     "--eval-after", str(rated.suite_path))
    assert f"job 1 queued: dpo on dataset 1, base {tiny_model_dir.name} (not registered yet)" in queued
    second = run("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1")
    assert "job 2 queued" in second
    assert "job 2: cancelled" in run("jobs", "cancel", "2")

    worked = run("worker", "--once")  # registers the base as the version its run used, trains, re-evaluates
    assert f"job 1 succeeded: adapter model:{rated.base_model_id + 1} (dpo) from base model:{rated.base_model_id}" \
        in worked, worked
    with open_store().sessions() as session:
        (follow_up,) = session.get_one(RetuneJob, 1).follow_up_run_ids
    assert f"retune-tiny: run {follow_up} against the base's run {rated.base_run_id}" in worked
    assert re.search(r"^    abstention \d\.\d{3} -> \d\.\d{3} \([+-]\d\.\d{3}, 95% CI [+-]\d\.\d{3} to [+-]\d\.\d{3};",
                     worked, re.M), worked
    assert "no queued jobs" in run("worker", "--once")

    listing = run("jobs", "list")
    assert "succeeded" in listing and "cancelled" in listing
    shown = run("jobs", "show", "1")
    assert f"adapter model:{rated.base_model_id + 1}" in shown and "abstention 0.000 -> " in shown
    assert re.search(r"^step 1 of \d+: loss \d", shown, re.M), shown  # log lines a person reads, not dicts
    assert f"base model {tiny_model_dir.name} registered as model version {rated.base_model_id}" in shown
    assert "{" not in shown.split("log:")[0]  # the settings too: "epochs 1.0, learning_rate 0.0001, ..."
    assert "config: epochs 1.0, learning_rate 0.0001" in shown
    traced = run("lineage", f"run:{follow_up}")
    assert "made by retune job 1: dpo, succeeded" in traced
    assert "from 16 ratings of campaign 1 (0 simulated)" in traced
    assert f"parent model:{rated.base_model_id}" in traced


def test_retune_refuses_what_cannot_work_before_storing_or_loading_anything(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    store.close()
    _no_model_loads(monkeypatch)
    campaign, model = str(rated.campaign_id), str(tiny_model_dir)

    # A single-output campaign has no A/B votes: pairwise makes nothing, says why and what would work.
    pairwise = ["data", "build", "--campaign", campaign, "--strategy", "pairwise", "--holdout", "0"]
    code, _, err = invoke_main(pairwise, monkeypatch, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "strategy pairwise made no training rows from the 16 ratings of campaign 1" in err
    assert "16 ratings judge one output, not an A/B pair" in err
    assert "from these ratings strategy correction makes 16, kto makes 32, sft makes 16 training rows" in err
    assert "nothing was stored (--allow-empty stores it anyway)" in err
    with store.sessions() as session:
        assert session.query(PreferenceDataset).count() == 0

    code, out, err = invoke_main([*pairwise, "--allow-empty"], monkeypatch, capsys)
    assert code == 0 and out.startswith("dataset 1 (pairwise): 0 train rows"), err
    assert f"note: a retune needs {MIN_TRAIN_ROWS} training rows" in out
    invoke_main(["data", "build", "--campaign", campaign, "--strategy", "kto", "--holdout", "0"], monkeypatch, capsys)
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "I don't know.", "rejected": f"A{i}."}) + "\n"
                             for i in range(3)))
    invoke_main(["data", "import", str(small)], monkeypatch, capsys)
    code, listed, _ = invoke_main(["data", "list"], monkeypatch, capsys)
    assert code == 0
    assert "! dataset 1 (pairwise) has no training rows" in listed
    assert f"! dataset 3 (import) has 3 training rows, fewer than the {MIN_TRAIN_ROWS}" in listed

    refusals = {
        ("--dataset", "1"): "--dataset: dataset 1 (pairwise) has no training rows; build one",
        ("--dataset", "3"): f"--dataset: dataset 3 (import) has 3 training rows, fewer than the {MIN_TRAIN_ROWS} a "
                            "retune needs",
        ("--dataset", "2", "--method", "dpo"): "--dataset: dataset 2 (kto) holds kto rows, which dpo cannot train "
                                               "on; retune it with --method kto",
        ("--dataset", "2", "--eval-after", "nosuchsuite"): "--eval-after: nosuchsuite: is not a built-in suite",
        ("--dataset", "2", "--model", "openai:http://127.0.0.1:9/v1"): "--model 'openai:http://127.0.0.1:9/v1': the "
                                                                          "openai backend serves a model",
    }
    for args, words in refusals.items():
        code, _, err = invoke_main(["retune", "--model", model, *args], monkeypatch, capsys)
        assert code == 2 and len(err.splitlines()) == 1 and words in err, (args, err)
    with store.sessions() as session:
        assert session.query(RetuneJob).count() == 0  # nothing queued, and no model was loaded

    code, out, err = invoke_main(["retune", "--model", model, "--dataset", "3", "--force"], monkeypatch, capsys)
    assert code == 0 and "job 1 queued: dpo on dataset 3" in out, err
    store.close()


def test_a_job_queued_past_the_checks_fails_in_one_line_and_worker_once_exits_1(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job an older evaltune (or a script) queued for the wrong method once failed late with ``KeyError:
    'chosen'``; now the worker says in one line what is wrong and how to fix it, and exits 1."""
    from evaltune.retune import jobs
    from evaltune.retune.config import DpoConfig, KtoConfig

    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    invoke_main(["data", "build", "--campaign", str(rated.campaign_id), "--strategy", "kto"], monkeypatch, capsys)
    with store.session_scope() as session:
        jobs.enqueue(session, dataset_id=1, base_model_id=rated.base_model_id, config=DpoConfig())

    code, out, _ = invoke_main(["worker", "--once"], monkeypatch, capsys)
    assert code == 1
    assert ("job 1 failed: dataset 1 (kto) holds kto rows, which dpo cannot train on; retune it with --method kto"
            in out), out
    code, shown, _ = invoke_main(["jobs", "show", "1", "--traceback"], monkeypatch, capsys)
    log = shown.split("log:\n")[1].split("traceback:\n")[0]
    assert "Traceback" not in log and "KeyError" not in log
    assert log.strip().splitlines()[-1].startswith("failed: dataset 1 (kto) holds kto rows")
    assert "Traceback (most recent call last)" in shown.split("traceback:\n")[1]

    with store.session_scope() as session:  # settings no version of evaltune wrote: one line, not a traceback
        job = jobs.enqueue(session, dataset_id=1, base_model_id=rated.base_model_id, config=KtoConfig())
        job.config = {**job.config, "epochs": "many"}
    code, out, _ = invoke_main(["worker", "--once"], monkeypatch, capsys)
    assert code == 1 and ("job 2 failed: stored retune config: epochs must be a number, got 'many'; this job "
                          "cannot run: queue a new one with 'evaltune retune'") in out, out
    store.close()


def test_an_unexpected_error_is_one_sentence_that_points_at_the_traceback() -> None:
    message = failure_message(RuntimeError("CUDA error: device-side assert\n  more detail"), "training", 3)
    assert message == ("training failed with an unexpected RuntimeError: CUDA error: device-side assert; 'evaltune "
                       "jobs show 3 --traceback' shows where (worth a bug report), and 'evaltune jobs retry 3' runs "
                       "it again")
    full = OSError(28, "No space left on device", "/home/me/.evaltune/adapters/job-3")
    assert failure_message(full, "training", 3) == (
        "training failed: cannot use /home/me/.evaltune/adapters/job-3 (No space left on device); free disk space "
        "or fix the folder's permissions under EVALTUNE_HOME, then 'evaltune jobs retry 3'")
