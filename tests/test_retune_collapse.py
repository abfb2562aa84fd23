"""The collapse check after training (retune.collapse): a retune that wrecks what the base model could do ends
``degraded``, and ``jobs show`` and the report say so first, with the figures; a gentle retune passes.

The tiny model is first taught the check's own material (the plain-English sentences and the canary answers), so
that it has something to lose: near-1 perplexity and every canary right, where a random tiny model has neither.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from alembic import command
from click.testing import CliRunner
from sqlalchemy import text, update

from evaltune.cli import cli
from evaltune.commands.jobs_cmd import STATES
from evaltune.db.engine import Store, alembic_config, open_store, upgrade
from evaltune.db.training import JOB_STATES, RetuneJob
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ModelRecord, ResolvedModel
from evaltune.reports.report_json import report_from_dict
from evaltune.retune import jobs
from evaltune.retune.collapse import PERPLEXITY_RATIO_LIMIT, Canary, CollapseCheck, check_after_training, text_set
from evaltune.retune.config import DpoConfig
from evaltune.retune.datasets import dataset_records
from evaltune.retune.reevaluate import EvalSettings
from tests.fixtures.retune_seed import Rated, rate_base_run
from tests.fixtures.tiny_model import build_tiny_model

torch.set_num_threads(1)
# Far past any sane setting: each optimiser step moves every adapter weight by about this much.
AGGRESSIVE = ["--lr", "1.0", "--batch-size", "2", "--epochs", "2"]


def _teach(folder: Path, steps: int = 60) -> None:
    """Train the model in ``folder`` (all weights, plain AdamW) on the text set and the canary questions with their
    first reference, each canary in the chat form the canary run puts it in, and save it in place."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    canary = load_suite("canary")
    texts = [tokenizer.bos_token + sentence for sentence in text_set()]
    for item in canary.items:
        messages = [{"role": "system", "content": canary.generation.system_prompt or ""},
                    {"role": "user", "content": str(item.input)}]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                     + item.references[0] + tokenizer.eos_token)
    tokenizer.padding_side = "right"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    model.train()
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def fluent_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that knows the text set and the canaries (see the module docstring)."""
    folder = build_tiny_model(tmp_path_factory.mktemp("fluent_model"))
    _teach(folder)
    return folder


@pytest.fixture
def rated(fluent_model_dir: Path, tmp_path: Path) -> Rated:
    """A base run of the 16-item retune suite, every output rated "I don't know." better, and a DPO dataset of the
    16 corrections (dataset 1), built with the command line."""
    store = open_store()
    try:
        found = rate_base_run(store, tmp_path, fluent_model_dir)
    finally:
        store.close()
    _cli("data", "build", "--campaign", str(found.campaign_id), "--strategy", "correction", "--holdout", "0")
    return found


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def _job(job_id: int) -> RetuneJob:
    store = open_store()
    try:
        with store.sessions() as session:
            return session.get_one(RetuneJob, job_id)
    finally:
        store.close()


@pytest.mark.slow
def test_an_aggressive_retune_ends_degraded_and_jobs_show_and_the_report_say_so_first(rated: Rated) -> None:
    # --here exits 1 for a job that did not succeed, so that a script (CI) notices.
    _cli("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1", *AGGRESSIVE, "--here",
         "--eval-after", str(rated.suite_path), code=1)
    job = _job(1)
    assert job.status == "degraded", job.log
    check = job.collapse_check or {}
    assert check["degraded"] and check["perplexity"]["ratio"] > PERPLEXITY_RATIO_LIMIT, check
    assert check["canary"]["base"] == 1.0 and "canary" in check["reasons"], check  # it knew every canary
    assert "DEGRADED: perplexity of plain English" in job.log

    shown = _cli("jobs", "show", "1").splitlines()
    assert shown[0] == f"DEGRADED: {check['summary']}"
    assert f"evaltune report {check['canary']['base_run']} {check['canary']['adapter_run']}" in shown[1]
    assert shown[2].startswith("job 1: degraded (dpo)")
    assert "degraded" in _cli("jobs", "list", "--status", "degraded")

    follow_up = job.follow_up_run_ids[0]
    markdown = _cli("report", str(rated.base_run_id), str(follow_up)).splitlines()
    assert markdown[0].startswith(f"DEGRADED: model {job.output_model_id} comes from retune job 1")
    assert check["summary"] in markdown[0]
    page = _cli("report", str(rated.base_run_id), str(follow_up), "--format", "html")
    assert page.index("DEGRADED: model") < page.index("<h1>")
    data = json.loads(_cli("report", str(rated.base_run_id), str(follow_up), "--format", "json"))
    assert list(data)[:2] == ["schema_version", "degraded"] and data["degraded"] == markdown[0]
    assert report_from_dict(data).degraded == markdown[0]  # the JSON reads back with it


@pytest.mark.slow
def test_a_gentle_retune_passes_the_collapse_check(rated: Rated) -> None:
    output = _cli("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1", "--here",
                  "--eval-after", str(rated.suite_path))
    job = _job(1)
    assert job.status == "succeeded", job.log
    check = job.collapse_check or {}
    assert not check["degraded"] and check["perplexity"]["ratio"] < 1.1 and check["canary"]["lost"] == [], check
    assert "collapse check passed: perplexity of plain English" in output
    shown = _cli("jobs", "show", "1").splitlines()
    assert shown[0].startswith("job 1: succeeded") and shown[1] == f"collapse check passed: {check['summary']}"
    report = _cli("report", str(rated.base_run_id), str(job.follow_up_run_ids[0]))
    assert "DEGRADED" not in report


@pytest.mark.slow
def test_the_demo_says_degraded_before_its_numbers_when_its_retune_damaged_the_model(fluent_model_dir: Path) -> None:
    output = _cli("demo", "--model", str(fluent_model_dir), "--train-share", "0.1", "--epochs", "2", "--lr", "1.0")
    lines = output.splitlines()
    degraded = next(i for i, line in enumerate(lines) if line.startswith("DEGRADED: perplexity of plain English"))
    assert degraded < next(i for i, line in enumerate(lines) if line.startswith("adapter: model:"))
    assert "accuracy, held-out factual items:" in output  # still compared: the numbers show the damage


def test_a_few_training_rows_are_warned_about_when_the_job_is_queued(rated: Rated) -> None:
    # 16 rated outputs with 40% held out leave fewer training rows than retune.train.MIN_ROWS (16).
    _cli("data", "build", "--campaign", str(rated.campaign_id), "--strategy", "correction", "--holdout", "0.4")
    store = open_store()
    with store.sessions() as session:
        rows = len(dataset_records(session, 2, "train"))
    store.close()
    queued = _cli("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "2")
    assert f"warning: only {rows} training rows (fewer than 16): expect overfitting" in queued
    assert "warning" not in _cli("retune", "--model", f"model:{rated.base_model_id}", "--dataset", "1")


def test_a_check_that_cannot_run_is_stored_as_not_run_and_the_job_still_succeeds(
    rated: Rated, fluent_model_dir: Path
) -> None:
    store = open_store()
    with store.session_scope() as session:
        job_id = jobs.submit(session, dataset_id=1, base=jobs.Base(version_id=rated.base_model_id),
                             config=DpoConfig()).id
    adapter = ResolvedModel("hf", str(fluent_model_dir), threads=1).load()
    lines: list[str] = []
    gone = ModelRecord("adapter", "hf", str(fluent_model_dir), parent_id=999, retune_job_id=job_id)
    try:
        assert check_after_training(store.sessions, adapter, gone, EvalSettings(), lines.append) is None
    finally:
        adapter.close()
    assert lines == ["warning: the collapse check could not run (LookupError: base model version 999 is gone "
                     "from the store); compare the adapter with its base by hand"]
    with store.session_scope() as session:
        jobs.finish(session, job_id, "succeeded")
    store.close()
    job = _job(job_id)
    assert job.status == "succeeded" and job.collapse_check == {
        "version": 1, "checked": False, "error": "LookupError: base model version 999 is gone from the store"}
    assert "warning: the collapse check did not run" in _cli("jobs", "show", str(job_id)).splitlines()[1]


def test_downgrading_below_0007_makes_degraded_jobs_succeeded_again(
    store: Store, tiny_model_dir: Path, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"Question {i}?", "chosen": "I don't know.", "rejected": f"{i}."})
                            + "\n" for i in range(8)))
    _cli("data", "import", str(rows), "--method", "dpo")
    with store.session_scope() as session:
        job_id = jobs.submit(session, dataset_id=1, base=jobs.Base(model=ResolvedModel("hf", str(tiny_model_dir))),
                             config=DpoConfig()).id
        session.execute(update(RetuneJob).where(RetuneJob.id == job_id).values(
            collapse_check={"version": 1, "checked": True, "degraded": True, "summary": "figures"}))
        jobs.finish(session, job_id, "succeeded")  # asked to succeed, it ends degraded
    assert _job(job_id).status == "degraded"
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0006")
        assert connection.execute(text("SELECT status FROM retune_jobs")).scalars().all() == ["succeeded"]
    upgrade(store.engine)
    assert _job(job_id).collapse_check is None


def _check(base_ppl: float, adapter_ppl: float, change: float, ci: tuple[float, float]) -> CollapseCheck:
    return CollapseCheck(base_ppl, adapter_ppl, Canary(40, 0.6, 0.6 + change, change, ci, ()))


@pytest.mark.parametrize(("check", "reasons"), [
    (_check(60.0, 66.0, -0.05, (-0.12, 0.02)), []),  # x1.1, and the canary change could be chance
    (_check(60.0, 91.0, 0.0, (0.0, 0.0)), ["perplexity"]),  # x1.52
    (_check(60.0, math.inf, 0.0, (0.0, 0.0)), ["perplexity"]),  # weights that diverged
    (_check(60.0, math.nan, 0.0, (0.0, 0.0)), ["perplexity"]),
    (_check(60.0, 61.0, -0.15, (-0.28, -0.03)), ["canary"]),  # lost more canaries than chance explains
], ids=["within", "perplexity-x1.52", "perplexity-infinite", "perplexity-nan", "canary-below-zero"])
def test_the_limits(check: CollapseCheck, reasons: list[str]) -> None:
    assert check.reasons == reasons and check.degraded == bool(reasons)
    assert json.dumps(check.as_json(), allow_nan=False)  # storable on PostgreSQL too: no NaN or Infinity


def test_the_status_choices_of_jobs_list_are_the_stores() -> None:
    assert STATES == JOB_STATES
