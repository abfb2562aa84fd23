"""``evaltune score``: outputs from a file, and a stored run re-scored without regenerating."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from evaltune.cli import cli
from evaltune.db.engine import open_store
from evaltune.db.evaluation import Generation, RunMetric


def test_scoring_a_jsonl_file_adds_one_field_per_scorer(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text(
        json.dumps({"output": "It is Bogota.", "reference": "Bogotá"}) + "\n\n"
        + json.dumps({"output": "The capital is Morn.", "expect_abstention": True}) + "\n",
        encoding="utf-8",
    )
    scored = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(cli, ["score", "--input", str(source), "--scorers", "answer_match,abstention",
                                      "--output", str(scored)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in scored.read_text().splitlines()]
    assert lines[0]["answer_match"] == 1.0 and lines[0]["abstention"] is None
    assert lines[1]["abstention"] == 0.0 and lines[1]["answer_match"] is None
    assert "answer_match" in result.output  # the summary table


def test_a_bad_line_names_the_file_line_and_field_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text('{"output": "ok"}\n{"outputs": "typo"}\n')
    scored = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(cli, ["score", "--input", str(source), "--scorers", "length_chars_nope"])
    assert result.exit_code != 0
    result = CliRunner().invoke(cli, ["score", "--input", str(source), "--scorers", "answer_match",
                                      "--output", str(scored)])
    assert result.exit_code != 0
    assert f"{source}:2: field 'output'" in str(result.exception)
    assert not scored.exists()


def test_rescoring_a_stored_run_adds_metrics_without_new_generations(tiny_model_dir: Path) -> None:
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "smoke", "--model", str(tiny_model_dir), "--scorers", "answer_match"])
    assert ran.exit_code == 0, ran.output
    store = open_store()
    with store.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Generation))
    rescored = runner.invoke(cli, ["score", "1", "--scorers", "token_f1,abstention"])
    assert rescored.exit_code == 0, rescored.output
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == before
        names = set(session.scalars(select(RunMetric.name).where(RunMetric.run_id == 1)))
    assert names == {"answer_match", "token_f1", "abstention"}
    store.close()


def test_every_scorer_loads_offline_as_an_evaluate_module() -> None:
    import evaluate

    from evaltune.metrics.hf_evaluate import module_path

    module = evaluate.load(module_path(), "answer_match")
    result = module.compute(predictions=["It is Paris.", "London"], references=[["Paris"], ["Rome"]])
    assert result["answer_match"] == 0.5 and result["answer_match_n"] == 2
    assert result["answer_match_ci_low"] < 0.5 < result["answer_match_ci_high"]
    f1 = evaluate.load(module_path(), "token_f1").compute(predictions=["It is Paris."], references=["Paris"])
    assert f1["token_f1"] == 0.5
