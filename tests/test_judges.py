"""Judges (harness.judges): which judge a run uses; the G-Eval rubric score, probability-weighted where the judge
gives log-probabilities and parsed otherwise, through a local tiny model (its chat template), `transformers serve`
(chat and completions) and a small fake endpoint; pairwise judging in both orders; and the cache. The command line,
and secrets kept out of every judge error, are in tests/test_judge_cli.py."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evaltune.db import Store, open_store
from evaltune.db.judging import JudgeCall
from evaltune.harness.backends.base import GenerationRequest
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.judges import (
    JudgeCache,
    JudgeError,
    JudgeSpec,
    JudgeSpecError,
    PairRequest,
    RubricRequest,
    configured_judge,
    judge_from_options,
    judge_from_settings,
    load_judge,
    pairwise_summary,
    parse_judge_block,
)
from evaltune.harness.judges.clients import REPLY_TOKENS
from evaltune.harness.judges.rubric import parse_score, rubric_prompt
from evaltune.harness.suite import GenerationSettings, Message, SuiteError
from evaltune.settings import SettingError
from tests.fixtures.answer_server import serving
from tests.fixtures.fake_judge import (
    WEIGHTED,
    JudgeServer,
    Token,
    endpoint,
    forget_judge_settings,
    four_with_logprobs,
)


@pytest.fixture(autouse=True)
def _no_judge_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_judge_settings(monkeypatch)


# Which judge ----------------------------------------------------------------------------------------------------

def test_the_judge_block_and_the_other_front_doors_check_the_same_things(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    spec = parse_judge_block({"model": "openai:http://127.0.0.1:8000/v1", "model_name": "judge", "mode": "chat"},
                             "s.yaml:3")
    assert (spec.model, spec.model_name, spec.mode, spec.origin) == (
        "openai:http://127.0.0.1:8000/v1", "judge", "chat", "s.yaml:3: judge")
    assert spec.describe() == "judge @ 127.0.0.1:8000" and spec == JudgeSpec(spec.model, "judge", "chat")
    refused = [
        ("a text", "judge", "must be a mapping"),
        ({"model": "x", "model_nme": "y"}, "judge.model_nme", "did you mean 'model_name'"),
        ({"model_name": "y"}, "judge.model", "name the judge model"),
        ({"model": "openai:http://h:1/v1"}, "judge.model_name", "needs the name of the model it serves"),
        ({"model": "http://h:1/v1", "model_name": "m"}, "judge.model", "write an endpoint as openai:http://h:1/v1"),
        ({"model": "x", "mode": "fast"}, "judge.mode", "not one of auto, chat, completions"),
        ({"model": "model:3"}, "judge.model", "not a stored model version"),
    ]
    for block, field, words in refused:
        with pytest.raises(SuiteError) as raised:
            parse_judge_block(block, "s.yaml:3")
        assert raised.value.field == field and words in str(raised.value) and "s.yaml:3" in str(raised.value)
    with pytest.raises(SuiteError) as raised:
        parse_judge_block({"model": "openai:http://me:hunter2@h:1/v1", "model_name": "m"}, "s.yaml:3")
    assert "hunter2" not in str(raised.value) and "EVALTUNE_OPENAI_API_KEY" in str(raised.value)

    assert judge_from_options(None, None) is None
    assert judge_from_options("./judge", None) == JudgeSpec("./judge")
    with pytest.raises(JudgeSpecError, match="--judge-model-name: the endpoint openai:http://h:1/v1 needs"):
        judge_from_options("openai:http://h:1/v1", None)
    with pytest.raises(JudgeSpecError, match="--judge-model-name needs --judge"):
        judge_from_options(None, "m")

    assert judge_from_settings() is None
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", "openai:http://h:1/v1")
    with pytest.raises(SettingError, match="EVALTUNE_JUDGE_MODEL_NAME: the endpoint"):
        judge_from_settings()
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL_NAME", "m")
    monkeypatch.setenv("EVALTUNE_JUDGE_MODE", "completions")
    from_env = judge_from_settings()
    assert from_env == JudgeSpec("openai:http://h:1/v1", "m", "completions")
    monkeypatch.setenv("EVALTUNE_JUDGE_MODE", "fast")
    with pytest.raises(SettingError, match="EVALTUNE_JUDGE_MODE: 'fast' is not one of auto, chat, completions"):
        judge_from_settings()
    monkeypatch.setenv("EVALTUNE_JUDGE_MODE", "completions")

    # The suite's own judge, else --judge, else the settings.
    given = JudgeSpec("./other")
    assert configured_judge(None, None) == from_env and configured_judge(None, given) == given
    with caplog.at_level(logging.WARNING, logger="evaltune.judge"):
        assert configured_judge(spec, given) == spec
    assert "--judge ./other is not used" in caplog.text


# The rubric score -----------------------------------------------------------------------------------------------

def _hand_weighted_score(folder: Path, request: RubricRequest) -> float:
    """sum(s * P(s)) / sum(P(s)) over the scale's digits, from the tiny model's next-token distribution after the
    chat-templated question, computed here with transformers alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template([{"role": "user", "content": rubric_prompt(request).text}], tokenize=False,
                                         add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        probabilities = torch.softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
    scale = range(1, request.scale + 1)
    p = {s: float(probabilities[tokenizer.convert_tokens_to_ids(str(s))]) for s in scale}
    return sum(s * p[s] for s in scale) / sum(p.values())


def test_a_local_judge_gives_the_probability_weighted_mean_over_the_scale(tiny_model_dir: Path) -> None:
    requests = [RubricRequest("What is 2+2?", "4", "The answer is correct."),
                RubricRequest("Capital of France?", "Paris, on the Seine.", "Answers in one sentence.", scale=3),
                RubricRequest("When did the bridge open?", "In 1887.", "Keeps to the source.",
                              reference="1887", context="The Harlow Bridge was completed in 1887.")]
    judge = load_judge(JudgeSpec(str(tiny_model_dir)))
    scores = judge.rubric(requests)
    for request, score in zip(requests, scores, strict=True):
        assert score.method == "logprobs" and score.score is not None and score.normalized is not None
        assert score.score == pytest.approx(_hand_weighted_score(tiny_model_dir, request), abs=1e-4)
        assert score.normalized == pytest.approx((score.score - 1) / (request.scale - 1))
        assert "weighted by the judge's probabilities" in score.reason
    assert [s.score for s in judge.rubric(requests[1:2])] == pytest.approx([scores[1].score], abs=1e-5)
    shown = rubric_prompt(requests[2]).text
    assert "Context (the source" in shown and "Reference answer" in shown and "from 1 (worst) to 5" in shown
    judge.close()


def _local_reply(tiny_model_dir: Path, question: str, chat: bool) -> str:
    """What the tiny model replies to a judge question, greedily, through the hf backend."""
    backend = HFBackend(HFConfig(str(tiny_model_dir), threads=1))
    prompt = backend.model_input((Message("user", question),) if chat else question)
    settings = GenerationSettings(max_new_tokens=REPLY_TOKENS)
    return backend.generate([GenerationRequest(prompt, settings)])[0].text


@pytest.mark.parametrize("mode", ["chat", "completions", "auto"])
def test_transformers_serve_judges_through_chat_and_completions_and_its_reply_is_parsed(
        served: tuple[str, str], tiny_model_dir: Path, mode: str) -> None:
    url, name = served
    request = RubricRequest("What is 2+2?", "4", "The answer is correct.")
    judge = load_judge(JudgeSpec(f"openai:{url}", name, mode))
    [score] = judge.rubric([request])
    # transformers serve ignores logprobs: the score is what the reply says, and the reply is the model's own.
    assert score.raw == _local_reply(tiny_model_dir, rubric_prompt(request).text, chat=mode != "completions")
    parsed = parse_score(score.raw, 5)
    assert score.method == ("parsed" if parsed is not None else "failed")
    assert score.score == parsed
    judge.close()


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_an_endpoint_with_logprobs_gives_the_weighted_score_exactly(mode: str) -> None:
    with serving(JudgeServer(four_with_logprobs)) as server:
        judge = load_judge(endpoint(server, mode=mode))
        [score] = judge.rubric([RubricRequest("What is 2+2?", "4", "The answer is correct.")])
        assert score.method == "logprobs" and score.score == pytest.approx(WEIGHTED, abs=1e-12)
        assert score.normalized == pytest.approx((WEIGHTED - 1) / 4, abs=1e-12)
        assert score.raw == "Score: 4. Clear." and "P(4)=0.53" in score.reason
        [sent] = server.requests
        if mode == "chat":
            assert sent["path"] == "/v1/chat/completions" and (sent["logprobs"], sent["top_logprobs"]) == (True, 20)
            assert sent["messages"][0]["content"].endswith("Score:")
        else:
            assert sent["path"] == "/v1/completions" and sent["logprobs"] == 20 and sent["prompt"].endswith("Score:")
        assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("judge-a", 0.0, REPLY_TOKENS)


def test_an_endpoint_without_logprobs_is_read_from_its_reply() -> None:
    with serving(JudgeServer(four_with_logprobs, logprobs=False)) as server:
        judge = load_judge(endpoint(server))
        [score] = judge.rubric([RubricRequest("What is 2+2?", "4", "The answer is correct.")])
        assert (score.method, score.score, score.normalized) == ("parsed", 4.0, 0.75)
        assert "read from the judge's reply (no log-probabilities)" in score.reason
    with serving(JudgeServer(lambda q: ("I cannot say.", []))) as server:
        [score] = load_judge(endpoint(server)).rubric([RubricRequest("q", "a", "c")])
        assert (score.method, score.score, score.normalized) == ("failed", None, None)
    texts = ("4", "Score: 4/5", "4.5 of 5", "7", "1-5: 3", "0.5")
    assert [parse_score(t, 5) for t in texts] == [4, 4, 4.5, None, 1, None]


def test_an_endpoint_that_refuses_logprobs_or_chat_is_asked_another_way() -> None:
    for mode, path in (("chat", "/v1/chat/completions"), ("completions", "/v1/completions")):
        refuse = {path: (400, "'logprobs' is not supported by this server")}
        with serving(JudgeServer(four_with_logprobs, refuse=refuse, refuse_logprobs_only=True)) as server:
            [score] = load_judge(endpoint(server, mode=mode)).rubric([RubricRequest("q", "a", "c")])
            assert (score.method, score.score) == ("parsed", 4.0)
            assert [("logprobs" in r) for r in server.requests] == [True, False]
    refused = JudgeServer(four_with_logprobs, refuse={"/v1/chat/completions": (400, "bad rubric")})
    with serving(refused) as server, pytest.raises(JudgeError, match="answered 400: bad rubric"):
        load_judge(endpoint(server)).rubric([RubricRequest("q", "a", "c")])  # any other refusal is the user's to fix
    with serving(JudgeServer(four_with_logprobs, refuse={"/v1/chat/completions": (404, "Not Found")})) as server:
        judge = load_judge(endpoint(server))  # auto: chat, else completions from then on
        assert judge.rubric([RubricRequest("q", "a", "c")])[0].method == "logprobs"
        judge.rubric([RubricRequest("q2", "a", "c")])
        assert [r["path"] for r in server.requests] == ["/v1/chat/completions", "/v1/completions",
                                                        "/v1/completions"]


# Pairwise -------------------------------------------------------------------------------------------------------

def _shown(question: str) -> tuple[str, str]:
    first = question.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
    second = question.split("\n\nAnswer B:\n", 1)[1].split("\n\nReply with one letter", 1)[0]
    return first, second


def prefers_paris(question: str) -> tuple[str, list[Token]]:
    first, second = _shown(question)
    letter = "A" if "Paris" in first else "B" if "Paris" in second else "C"
    return f"{letter}. It names the capital.", []


def test_pairwise_asks_both_orders_and_reports_position_bias_and_ties(tiny_model_dir: Path) -> None:
    pairs = [PairRequest("Capital of France?", "Paris.", "Lyon."), PairRequest("Capital of France?", "Lyon", "Paris"),
             PairRequest("Capital of Italy?", "Milan", "Turin")]
    with serving(JudgeServer(prefers_paris)) as server:
        verdicts = load_judge(endpoint(server)).pairwise(pairs)
        asked = [_shown(r["messages"][0]["content"]) for r in server.requests]
    assert sorted(asked) == sorted([("Paris.", "Lyon."), ("Lyon.", "Paris."), ("Lyon", "Paris"), ("Paris", "Lyon"),
                                    ("Milan", "Turin"), ("Turin", "Milan")])
    assert [(v.winner, v.consistent, v.first_order, v.second_order) for v in verdicts] == [
        ("a", True, "a", "a"), ("b", True, "b", "b"), ("tie", True, "tie", "tie")]
    summary = pairwise_summary(verdicts)
    assert (summary.wins_a, summary.wins_b, summary.ties, summary.consistent, summary.tie_answers) == (1, 1, 1, 3, 2)
    assert (summary.first_shown_rate, summary.position_bias) == (0.5, 0.0)

    with serving(JudgeServer(lambda q: ("A is better.", []))) as server:  # always the answer shown first
        biased = load_judge(endpoint(server)).pairwise(pairs)
    assert all((v.winner, v.consistent, v.first_order, v.second_order) == ("tie", False, "a", "b") for v in biased)
    summary = pairwise_summary(biased)
    assert (summary.ties, summary.consistent, summary.first_shown_rate, summary.position_bias) == (3, 0, 1.0, 0.5)
    assert summary.first_shown_ci is not None and summary.first_shown_ci[0] > 0.5  # six of six: not chance

    local = load_judge(JudgeSpec(str(tiny_model_dir)))
    once, again = local.pairwise(pairs), local.pairwise(pairs)
    assert once == again and all(v.first_order in ("a", "b", "tie") for v in once)


def test_pairwise_letters_come_from_logprobs_where_the_judge_gives_them() -> None:
    def unsure(question: str) -> tuple[str, list[Token]]:
        # Writes A, but puts more probability on B: the probabilities decide.
        return "A", [("A", {"A": math.log(0.3), " B": math.log(0.6), "C": math.log(0.1)})]

    with serving(JudgeServer(unsure)) as server:
        [verdict] = load_judge(endpoint(server)).pairwise([PairRequest("q", "x", "y")])
    assert (verdict.first_order, verdict.second_order, verdict.winner) == ("b", "a", "tie")


# The cache ------------------------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def both_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store on SQLite and on PostgreSQL (the command-line tests need SQLite only)."""
    url = f"sqlite:///{tmp_path / 'cache.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_store(str(url))
    yield opened
    opened.close()


def test_judge_calls_are_cached_by_judge_and_question(both_stores: Store) -> None:
    store = both_stores
    requests = [RubricRequest("What is 2+2?", "4", "Correct."), RubricRequest("What is 3+3?", "6", "Correct.")]
    with serving(JudgeServer(four_with_logprobs)) as server:
        with store.session_scope() as session:
            judge = load_judge(endpoint(server), JudgeCache(session))
            first = judge.rubric(requests + requests[:1])  # a question asked twice in one call is asked once
            assert judge.calls == 2 and len(server.requests) == 2
        with store.session_scope() as session:
            again = load_judge(endpoint(server), JudgeCache(session))
            assert again.rubric(requests) == first[:2] and again.calls == 0 and len(server.requests) == 2
            changed = [RubricRequest("What is 2+2?", "4", "Correct and short."), *requests]
            again.rubric(changed)
            assert again.calls == 1 and len(server.requests) == 3  # a changed prompt is a new question
            other = load_judge(endpoint(server, name="judge-b"), JudgeCache(session))
            other.rubric(requests)
            assert other.calls == 2 and len(server.requests) == 5  # so is another judge
        with store.session_scope() as session:
            assert session.scalar(select(func.count()).select_from(JudgeCall)) == 5
            stored = session.scalars(select(JudgeCall).where(JudgeCall.judge == "judge-a @ " +
                                                             server.url.split("/")[2])).first()
            assert stored is not None and stored.answer_logprobs is not None
            assert stored.answer_logprobs["4"] == pytest.approx(math.log(0.5))

