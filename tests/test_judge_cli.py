"""Judges at the command line: llm-rubric and the judge scorer graded through the configured judge (the suite's
judge:, --judge or the settings), local or an endpoint, and cached; and secrets kept out of every judge error. The
judges themselves are tested in tests/test_judges.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evaltune.db import Store
from evaltune.db.evaluation import Generation, Run, RunMetric, Score
from evaltune.db.judging import JudgeCall
from evaltune.harness.judges import JudgeError, JudgeSpec, RubricRequest, judging_for, load_judge
from evaltune.metrics.registry import get_scorer
from tests.conftest import invoke_main
from tests.fixtures.answer_server import serving
from tests.fixtures.fake_judge import (
    WEIGHTED,
    WEIGHTED_OF_3,
    JudgeServer,
    endpoint,
    forget_judge_settings,
    four_with_logprobs,
)
from tests.test_hallucination_models import example

SECRET = "sk-test-5ecret-c0ffee"


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # the judge's cache is one table: SQLite is enough here
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(autouse=True)
def _no_judge_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_judge_settings(monkeypatch)


# Secrets --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variable", ["EVALTUNE_OPENAI_API_KEY", "OPENAI_API_KEY"])
def test_the_api_key_never_appears_in_a_judge_error(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, SECRET)
    echo = {"/v1/chat/completions": (400, "bad request from {auth}")}
    with serving(JudgeServer(four_with_logprobs, refuse=echo)) as server:
        with pytest.raises(JudgeError) as raised:
            load_judge(endpoint(server, mode="chat")).rubric([RubricRequest("q", "a", "c")])
        assert server.requests[0]["auth"] == f"Bearer {SECRET}"  # it was sent, and the server echoed it back
    assert SECRET not in str(raised.value) and "bad request from Bearer ***" in str(raised.value)
    assert raised.value.__cause__ is None or SECRET not in str(raised.value.__cause__)


# The command line: llm-rubric and the judge scorer through the configured judge ---------------------------------

SUITE = """\
name: judged
{judge}items:
  - id: capital
    input: What is the capital of France?
    references: [Paris]
    assert:
      - {{type: llm-rubric, value: "Names the city.", threshold: 0.6}}
      - {{type: llm-rubric, value: "Names the city.", threshold: 0.75}}
      - {{type: llm-rubric, value: "Is polite.", scale: 3}}
  - id: sum
    input: What is 2+2?
    assert:
      - {{type: llm-rubric, value: "Names the city.", threshold: 0.6}}
"""


def suite_file(tmp_path: Path, judge: str = "", name: str = "judged.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SUITE.format(judge=judge), encoding="utf-8")
    return path


def judge_block(server: JudgeServer, name: str = "judge-a") -> str:
    return f"judge: {{model: 'openai:{server.url}', model_name: {name}}}\n"


def _assertion_scores(store: Store, run_id: int) -> dict[tuple[str, str], Any]:
    with store.session_scope() as session:
        rows = session.scalars(select(Score).where(Score.run_id == run_id, Score.scorer.like("assertion:%")))
        return {(row.details["type"] + ":" + row.details["assertion"]["value"], row.scorer): row for row in rows}


def test_llm_rubric_is_graded_by_the_suites_judge_and_says_how(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with serving(JudgeServer(four_with_logprobs)) as server:
        suite = suite_file(tmp_path, judge_block(server))
        args = ["run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "4"]
        code, out, err = invoke_main(args, monkeypatch, capsys)
        assert code == 0, err
        # One question per item and distinct rubric/scale: two thresholds on one rubric share an answer.
        assert len(server.requests) == 3 and all(r["path"] == "/v1/chat/completions" for r in server.requests)
        with store.session_scope() as session:
            run_id = session.scalars(select(Run.id)).one()
            rates = {m.name: m.value for m in session.scalars(select(RunMetric).where(RunMetric.run_id == run_id))}
            calls = session.scalar(select(func.count()).select_from(JudgeCall))
        assert calls == 3 and rates["pass_rate:llm-rubric"] == pytest.approx(3 / 4)
        scored = _assertion_scores(store, run_id)
        at_06 = scored[("llm-rubric:Names the city.", "assertion:1")]
        assert at_06.value == 1.0 and at_06.details["method"] == "logprobs"
        assert at_06.details["judge_score"] == pytest.approx(WEIGHTED) and at_06.details["scale"] == 5
        assert at_06.details["measured"] == pytest.approx((WEIGHTED - 1) / 4)
        assert at_06.details["judge"] == f"judge-a @ {server.url.split('/')[2]}"
        assert "judge score 3.84 of 5 (weighted by its probabilities), scaled 0.71 >= 0.60" in at_06.details["reason"]
        assert scored[("llm-rubric:Names the city.", "assertion:2")].value == 0.0  # 0.71 < 0.75
        polite = scored[("llm-rubric:Is polite.", "assertion:3")]
        assert polite.value == 1.0 and polite.details["judge_score"] == pytest.approx(WEIGHTED_OF_3)
        assert polite.details["measured"] == pytest.approx((WEIGHTED_OF_3 - 1) / 2)

        # The same command again: the run is the same run, and the judge is not asked again.
        code, out, err = invoke_main(args, monkeypatch, capsys)
        assert code == 0, err
        assert len(server.requests) == 3 and "already in the store" in out


def test_the_judge_scorer_and_rescoring_use_the_configured_judge_and_its_cache(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with serving(JudgeServer(four_with_logprobs, logprobs=False)) as server:
        code, _, err = invoke_main(["run", "smoke", "--model", str(tiny_model_dir), "--max-new-tokens", "4",
                                    "--limit", "3"], monkeypatch, capsys)
        assert code == 0, err
        monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", f"openai:{server.url}")
        monkeypatch.setenv("EVALTUNE_JUDGE_MODEL_NAME", "judge-a")
        code, out, err = invoke_main(["score", "1", "--scorers", "judge"], monkeypatch, capsys)
        assert code == 0, err
        assert len(server.requests) == 3 and "judge" in out
        with store.session_scope() as session:
            scores = list(session.scalars(select(Score).where(Score.scorer == "judge")))
        # "Score: 4" read from the text: 1 - (4 - 1) / 4 hallucinated.
        assert [s.value for s in scores] == [0.25] * 3 and {s.details["method"] for s in scores} == {"parsed"}
        code, _, err = invoke_main(["score", "1", "--scorers", "judge"], monkeypatch, capsys)
        assert code == 0 and len(server.requests) == 3  # scored again: every answer from the cache
        monkeypatch.setenv("EVALTUNE_JUDGE_MODEL_NAME", "judge-b")
        code, _, err = invoke_main(["score", "1", "--scorers", "judge"], monkeypatch, capsys)
        assert code == 0 and len(server.requests) == 6  # another judge is asked


def test_without_a_judge_judged_checks_are_skipped_saying_how_to_name_one(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke_main(["run", str(suite_file(tmp_path)), "--model", str(tiny_model_dir),
                                "--max-new-tokens", "4"], monkeypatch, capsys)
    assert code == 0, err
    reasons = {row.details["reason"] for row in _assertion_scores(store, 1).values()}
    assert reasons == {"skipped: set EVALTUNE_JUDGE_MODEL=<local folder, hub id or openai:http://HOST:PORT/v1> "
                       "(or the suite's judge:, or --judge) to enable llm-rubric"}
    with judging_for(None):
        [result] = get_scorer("judge").score_batch([example("It opened in 1887.")])
    assert result.value is None and "to enable judge" in result.details["reason"]


def test_a_judge_given_with_judge_grades_a_suite_that_names_none(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with serving(JudgeServer(four_with_logprobs)) as server:
        code, out, err = invoke_main(["run", str(suite_file(tmp_path)), "--model", str(tiny_model_dir),
                                      "--max-new-tokens", "4", "--judge", f"openai:{server.url}",
                                      "--judge-model-name", "judge-b"], monkeypatch, capsys)
        assert code == 0, err
        assert {r["model"] for r in server.requests} == {"judge-b"} and len(server.requests) == 3
        assert "pass_rate:llm-rubric" in out
        # Another judge makes another run (the judge is part of a judged run's fingerprint): its outputs come from
        # the cache, and the other judge is asked.
        code, out, err = invoke_main(["run", str(suite_file(tmp_path)), "--model", str(tiny_model_dir),
                                      "--max-new-tokens", "4", "--judge", f"openai:{server.url}",
                                      "--judge-model-name", "judge-a"], monkeypatch, capsys)
        assert code == 0, err
        assert out.startswith("run 2:") and "(0 generated, 2 from cache" in out
        assert [r["model"] for r in server.requests[3:]] == ["judge-a"] * 3


def test_a_local_judge_grades_a_run_with_its_chat_template(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    suite = suite_file(tmp_path, f"judge: {{model: '{tiny_model_dir}'}}\n")
    code, _, err = invoke_main(["run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "4"],
                               monkeypatch, capsys)
    assert code == 0, err
    with store.session_scope() as session:
        capital = session.scalars(select(Score).where(Score.scorer == "assertion:1").order_by(Score.id)).first()
        assert capital is not None
        generation = session.get_one(Generation, capital.generation_id)
        prompt, output = generation.prompt, generation.output
    [expected] = load_judge(JudgeSpec(str(tiny_model_dir))).rubric([RubricRequest(prompt, output, "Names the city.")])
    assert capital.details["method"] == "logprobs"
    assert capital.details["judge_score"] == pytest.approx(expected.score, abs=1e-5)


def test_judge_errors_at_the_command_line_name_the_judge_and_keep_secrets(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVALTUNE_OPENAI_API_KEY", SECRET)
    run = ["run", "", "--model", str(tiny_model_dir), "--max-new-tokens", "4"]
    with serving(JudgeServer(four_with_logprobs, refuse={"/v1/chat/completions": (400, "no: {auth}")})) as server:
        run[1] = str(suite_file(tmp_path, judge_block(server)))
        code, out, err = invoke_main(run, monkeypatch, capsys)
    assert code == 2 and SECRET not in out + err and "Bearer ***" in err and "judge-a @ 127.0.0.1" in err
    with store.session_scope() as session:  # what the refusals below must leave as it is
        runs = session.scalar(select(func.count()).select_from(Run))

    run[1] = str(suite_file(tmp_path, "judge: {model: 'openai:http://me:hunter2@127.0.0.1:9/v1', model_name: j}\n"))
    code, out, err = invoke_main(run, monkeypatch, capsys)
    assert code == 2 and "hunter2" not in out + err and "judge.model" in err

    run[1] = str(suite_file(tmp_path))
    code, out, err = invoke_main([*run, "--judge", "openai:http://me:hunter2@127.0.0.1:9/v1",
                                  "--judge-model-name", "j"], monkeypatch, capsys)
    assert code == 2 and "hunter2" not in out + err and "--judge" in err
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", "openai:http://me:hunter2@127.0.0.1:9/v1")
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL_NAME", "j")
    code, out, err = invoke_main(run, monkeypatch, capsys)
    assert code == 2 and "hunter2" not in out + err and "EVALTUNE_JUDGE_MODEL" in err
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", "openai:http://127.0.0.1:9/v1")
    code, out, err = invoke_main(run, monkeypatch, capsys)
    assert code == 2 and "named by EVALTUNE_JUDGE_MODEL" in err and "is the server running" in err
    with store.session_scope() as session:  # each refused before anything was stored
        assert session.scalar(select(func.count()).select_from(Run)) == runs
