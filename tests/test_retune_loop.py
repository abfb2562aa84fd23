"""The whole loop on a tiny model: ratings -> dataset -> job -> worker trains -> adapter registered -> re-run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import ModelVersion, Run
from evaltune.db.training import RetuneJob
from evaltune.harness.backends.hf import adapter_sha256
from evaltune.retune import jobs
from evaltune.retune.config import make_config
from evaltune.retune.datasets import build_dataset, dataset_records
from evaltune.retune.reevaluate import EvalSettings
from evaltune.retune.strategies import StrategyParams
from evaltune.retune.worker import WorkerOptions, run_once
from tests.fixtures.likelihood import completion_logprobs, load_with_adapter, margins
from tests.fixtures.retune_seed import CORRECTION, rate_base_run

torch.set_num_threads(1)


@pytest.mark.parametrize(("method", "strategy"), [("dpo", "correction"), ("kto", "kto"), ("sft", "sft")])
def test_ratings_become_an_adapter_that_prefers_the_corrections(
    method: str, strategy: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    with store.session_scope() as session:
        dataset = build_dataset(session, rated.campaign_id, strategy, StrategyParams(holdout=0.0))
        pairs_set = build_dataset(session, rated.campaign_id, "correction", StrategyParams(holdout=0.0))
        config = make_config(method, epochs=3, batch_size=8, learning_rate=1e-3, merge=method == "sft")
        job_id = jobs.enqueue(session, dataset_id=dataset.id, base_model_id=rated.base_model_id, config=config,
                              eval_suites=[str(rated.suite_path)]).id
        pairs = dataset_records(session, pairs_set.id)
    assert pairs and all(p["chosen"] == [{"role": "assistant", "content": CORRECTION}] for p in pairs)

    options = WorkerOptions(home=tmp_path, name="test-worker", eval=EvalSettings(threads=1), heartbeat_s=0.2)
    assert run_once(store, options, log=lambda _: None) == job_id

    with store.session_scope() as session:
        job = session.get(RetuneJob, job_id)
        assert job is not None and job.status == "succeeded", job.log if job else None
        assert re.search(r"^step \d+ of \d+: loss ", job.log, re.M), job.log  # readable lines, not JSON
        version = session.get(ModelVersion, job.output_model_id)
        assert version is not None and version.parent_id == rated.base_model_id
        assert version.retune_job_id == job_id and version.adapter_path
        assert version.adapter_sha256 == adapter_sha256(version.adapter_path)
        (run_id,) = job.follow_up_run_ids
        follow_up = session.get(Run, run_id)
        assert follow_up is not None and follow_up.status == "completed"
        assert follow_up.model_version_id == version.id
        base_location, adapter = str(tiny_model_dir), version.adapter_path
        merged = session.scalars(select(ModelVersion).where(ModelVersion.parent_id == version.id)).all()
        if method == "sft":  # asked to merge: the merged model is a version whose parent is the adapter's
            assert len(merged) == 1 and (Path(merged[0].location) / "model.safetensors").is_file()
        else:
            assert merged == []

    weights = load_file(str(Path(adapter) / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: non-zero means trained

    base, tokenizer = load_with_adapter(base_location)
    tuned, _ = load_with_adapter(base_location, adapter)
    before, after = sum(margins(base, tokenizer, pairs)), sum(margins(tuned, tokenizer, pairs))
    prompts, answers = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    ll_before = sum(completion_logprobs(base, tokenizer, prompts, answers))
    ll_after = sum(completion_logprobs(tuned, tokenizer, prompts, answers))
    print(f"{method}: margin {before / len(pairs):.3f} -> {after / len(pairs):.3f}; "
          f"log p(correction) {ll_before / len(pairs):.3f} -> {ll_after / len(pairs):.3f}")
    assert after > before
    assert ll_after > ll_before
    store.close()
