"""The runner end to end on a tiny real model: store, cache, resume after kill -9, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import Generation, Run, RunMetric, Score, Suite
from evaltune.evaluate import EvaluateRequest, evaluate
from evaltune.harness.suite import SettingsOverrides

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


def runs(url: str) -> list[tuple[int, int, int | None]]:
    """(id, seed, item limit) of every stored run, oldest first."""
    store = open_store(url)
    with store.sessions() as session:
        found = [(run.id, run.seed, run.item_limit) for run in session.scalars(select(Run).order_by(Run.id))]
    store.close()
    return found


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

    # The same run again would be served wholly from the cache: it is the stored run, not a copy of it.
    second = evaluate(request, status=lambda _: None).outcome
    assert second.reused and second.run_id == first.run_id
    assert (second.generated, second.from_cache) == (0, 9)
    assert (second.stats["from_cache"], second.stats["outputs"]) == (9, 9) and second.stats["tokens_per_s"] is None
    assert [m.value for m in second.metrics] == [m.value for m in first.metrics]
    assert runs(store_url) == [(first.run_id, 7, None)]

    other_seed = evaluate(EvaluateRequest(suite=str(suite), model=str(tiny_model_dir), seed=8),
                          status=lambda _: None).outcome
    assert other_seed.generated == 8  # sampled outputs depend on the seed; the choice scores do not
    assert other_seed.from_cache == 1


def test_settings_seed_and_limit_belong_to_the_run_and_share_one_suite_version(
    store_url: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    suite, model = str(write_suite(tmp_path, ITEMS)), str(tiny_model_dir)
    greedy = evaluate(EvaluateRequest(suite=suite, model=model), status=lambda _: None).outcome
    sampled = evaluate(EvaluateRequest(suite=suite, model=model, seed=3, settings=SettingsOverrides(
        temperature=0.9, top_p=0.8, max_new_tokens=4, samples=2)), status=lambda _: None).outcome
    limited = evaluate(EvaluateRequest(suite=suite, model=model, limit=2), status=lambda _: None).outcome
    assert sampled.generated == 4 * 2  # 4 generated items x 2 samples; the choice item is the greedy run's
    assert (limited.generated, limited.from_cache) == (0, 2)  # the first two items, from the greedy run
    store = open_store(store_url)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suite)) == 1
        stored = {run.id: run for run in session.scalars(select(Run))}
        assert {run.suite_id for run in stored.values()} == {1}
        made = stored[sampled.run_id].generation
        assert (made["temperature"], made["top_p"], made["max_new_tokens"], made["samples"]) == (0.9, 0.8, 4, 2)
        assert stored[greedy.run_id].generation["temperature"] == 0.0
        assert [stored[r.run_id].item_limit for r in (greedy, sampled, limited)] == [None, None, 2]
        assert stored[sampled.run_id].seed == 3
    store.close()


def test_under_greedy_decoding_the_seed_changes_nothing_and_is_warned_about(
    store_url: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    suite, model = str(write_suite(tmp_path, ITEMS)), str(tiny_model_dir)
    said: list[str] = []
    first = evaluate(EvaluateRequest(suite=suite, model=model), status=said.append).outcome
    assert not [line for line in said if line.startswith("warning")]  # nobody chose a seed
    again = evaluate(EvaluateRequest(suite=suite, model=model, seed=5), status=said.append).outcome
    assert [line for line in said if line.startswith("warning")] == [
        "warning: --seed 5 has no effect: tiny decodes greedily (temperature 0), so every seed gives the same "
        "outputs; add --temperature above 0 to sample"]
    assert again.reused and again.run_id == first.run_id
    said.clear()
    sampled = evaluate(EvaluateRequest(suite=suite, model=model, seed=5, settings=SettingsOverrides(temperature=1.0)),
                       status=said.append).outcome
    assert not [line for line in said if line.startswith("warning")]
    assert not sampled.reused and sampled.generated == 4


def test_a_rerun_under_another_evaltune_version_is_a_new_run_scored_again(
    store_url: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scorers may have changed between versions, so the rerun is a new measurement (its outputs still cached)."""
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    request = EvaluateRequest(suite=str(write_suite(tmp_path, ITEMS)), model=str(tiny_model_dir))
    first = evaluate(request, status=lambda _: None).outcome
    monkeypatch.setattr("evaltune.settings.code_version", lambda: "99.0")
    later = evaluate(request, status=lambda _: None).outcome
    assert not later.reused and later.run_id != first.run_id
    assert (later.generated, later.from_cache) == (0, 5)
    assert counts(store_url, later.run_id)["metrics"] == len(SCORERS)
