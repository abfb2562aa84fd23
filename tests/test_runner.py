"""The runner end to end on a tiny real model: store, cache, resume after kill -9, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import Generation, RunMetric, Score
from evaltune.evaluate import EvaluateRequest, evaluate

ITEMS = [
    {"id": "fact-paris", "input": "What is the capital of France?", "references": ["Paris"], "tags": ["factual"]},
    {"id": "fact-water", "input": "What is H2O?", "references": ["water"], "tags": ["factual"]},
    {"id": "fiction", "input": "Who founded Veltravia?", "expect_abstention": True, "tags": ["fictional"]},
    {"id": "ctx", "context": "The bridge opened in 1932.", "input": "When did the bridge open?",
     "references": ["1932"], "tags": ["context"]},
    {"id": "mc", "input": "Q: Is the sky blue?\nA:", "choices": ["yes", "no", "green"], "gold": [0],
     "tags": ["choice"]},
]
SCORERS = ["exact_match", "answer_match", "token_f1", "rouge_l", "abstention", "choice_accuracy"]


def write_suite(folder: Path, items: list[dict[str, object]], *, samples: int = 1, temperature: float = 0.0,
                max_new_tokens: int = 8) -> Path:
    path = folder / "suite.yaml"
    generation = {"max_new_tokens": max_new_tokens, "temperature": temperature, "samples": samples,
                  "batch_size": 4}
    path.write_text(yaml.safe_dump({"name": "tiny", "generation": generation, "scorers": SCORERS,
                                    "items": items}))
    return path


def counts(url: str, run_id: int) -> dict[str, int]:
    store = open_store(url)
    with store.sessions() as session:
        result = {
            "generations": session.scalar(select(func.count()).where(Generation.run_id == run_id)) or 0,
            "scores": session.scalar(select(func.count()).where(Score.run_id == run_id)) or 0,
            "metrics": session.scalar(select(func.count()).where(RunMetric.run_id == run_id)) or 0,
        }
    store.close()
    return result


def test_a_run_stores_outputs_scores_and_metrics_then_the_cache_serves_a_rerun(
    store_url: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    suite = write_suite(tmp_path, ITEMS, samples=2, temperature=0.8)
    request = EvaluateRequest(suite=str(suite), model=str(tiny_model_dir), seed=7)
    first = evaluate(request, status=lambda _: None).outcome

    # 4 generated items x 2 samples + 1 multiple-choice item scored once
    assert (first.generated, first.from_cache, first.already_stored) == (9, 0, 0)
    stored = counts(store_url, first.run_id)
    assert stored["generations"] == 9
    assert stored["scores"] == 9 * len(SCORERS)
    metric_names = {m.name for m in first.metrics}
    assert metric_names == set(SCORERS)  # every scorer applied to at least one item
    for metric in first.metrics:
        assert metric.ci_low <= metric.value <= metric.ci_high
    assert first.stats["completion_tokens"] > 0 and first.stats["tokens_per_s"] > 0

    second = evaluate(request, status=lambda _: None).outcome
    assert second.run_id != first.run_id
    assert (second.generated, second.from_cache) == (0, 9)
    assert [m.value for m in second.metrics] == [m.value for m in first.metrics]

    other_seed = evaluate(EvaluateRequest(suite=str(suite), model=str(tiny_model_dir), seed=8),
                          status=lambda _: None).outcome
    assert other_seed.generated == 8  # sampled outputs depend on the seed; the choice scores do not
    assert other_seed.from_cache == 1
