"""Judges (harness.judges): which judge a run uses; the G-Eval rubric score, probability-weighted where the judge
gives log-probabilities and parsed otherwise, through a local tiny model (its chat template), `transformers serve`
(chat and completions) and a small fake endpoint; pairwise judging in both orders; the cache; secrets kept out of
every judge error; and llm-rubric and the judge scorer through the configured judge, at the command line."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evaltune.db import Store, open_store
from evaltune.db.evaluation import Generation, Run, RunMetric, Score
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
    judging_for,
    load_judge,
    pairwise_summary,
    parse_judge_block,
)
from evaltune.harness.judges.clients import REPLY_TOKENS
from evaltune.harness.judges.rubric import parse_score, rubric_prompt
from evaltune.harness.suite import GenerationSettings, Message, SuiteError
from evaltune.metrics.registry import get_scorer
from evaltune.settings import SettingError
from tests.conftest import invoke_main
from tests.fixtures.answer_server import send_json
from tests.test_hallucination_models import example

Token = tuple[str, dict[str, float]]  # a generated token and the top log-probabilities at its place
Answer = Callable[[str], tuple[str, list[Token]]]  # the question -> (reply text, its tokens)
SECRET = "sk-test-5ecret-c0ffee"


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # the judge's cache is one table: SQLite is enough here
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(autouse=True)
def _no_judge_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVALTUNE_JUDGE_MODEL", "EVALTUNE_JUDGE_MODEL_NAME", "EVALTUNE_JUDGE_MODE",
                 "EVALTUNE_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# A small fake OpenAI-compatible judge ----------------------------------------------------------------------------

class JudgeServer(ThreadingHTTPServer):
    """Answers every question with ``answer(question)``, with top log-probabilities when ``logprobs`` (and the
    request asks for them); ``refuse`` maps a path to (status, message) it answers instead. Records each request."""

    def __init__(self, answer: Answer, logprobs: bool = True, refuse: dict[str, tuple[int, str]] | None = None,
                 refuse_logprobs_only: bool = False):
        super().__init__(("127.0.0.1", 0), _JudgeHandler)
        self.answer, self.logprobs, self.refuse = answer, logprobs, dict(refuse or {})
        self.refuse_logprobs_only = refuse_logprobs_only  # refuse only the requests that ask for log-probabilities
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def posts(self, path: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith(path)]


class _JudgeHandler(BaseHTTPRequestHandler):
    server: JudgeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        send_json(self, status, payload)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "judge-a"}, {"id": "judge-b"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization") or ""
        self.server.requests.append({"path": self.path, "auth": auth, **body})
        if self.path in self.server.refuse and (body.get("logprobs") or not self.server.refuse_logprobs_only):
            status, message = self.server.refuse[self.path]
            return self._send(status, {"error": {"message": message.format(auth=auth)}})
        chat = "messages" in body
        question = body["messages"][-1]["content"] if chat else body["prompt"]
        text, tokens = self.server.answer(question)
        send = bool(body.get("logprobs")) and self.server.logprobs
        if chat:
            choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            content = [{"token": t, "logprob": top.get(t, -0.01),
                        "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()]} for t, top in tokens]
            choice["logprobs"] = {"content": content} if send else None
        else:
            choice = {"text": text, "finish_reason": "stop"}
            choice["logprobs"] = {"tokens": [t for t, _ in tokens], "top_logprobs": [top for _, top in tokens],
                                  "token_logprobs": [top.get(t, -0.01) for t, top in tokens]} if send else None
        self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 9, "completion_tokens": len(tokens)}})


@contextmanager
def serving(server: JudgeServer) -> Iterator[JudgeServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# "Score: 4. Clear." with the scale's probabilities where the 4 was written: 4 at 0.5, 5 at 0.25, 2 at 0.2.
WEIGHTS = {" 4": 0.5, " 5": 0.25, "2": 0.2, " maybe": 0.05}
WEIGHTED = (4 * 0.5 + 5 * 0.25 + 2 * 0.2) / 0.95


# On a scale of 3: "2" at 0.6, 3 at 0.3, 1 at 0.1.
WEIGHTS_OF_3 = {" 2": 0.6, " 3": 0.3, "1": 0.1}
WEIGHTED_OF_3 = 2 * 0.6 + 3 * 0.3 + 1 * 0.1


def four_with_logprobs(question: str) -> tuple[str, list[Token]]:
    """Writes "Score: 4. Clear." (or "Score: 2." on a scale of 3), with the probabilities above at the number."""
    if "to 3 (best)" in question:
        return "Score: 2.", [("Score", {"Score": -0.1}), (":", {":": -0.1}),
                             (" 2", {k: math.log(v) for k, v in WEIGHTS_OF_3.items()}), (".", {".": -0.2})]
    tops = {k: math.log(v) for k, v in WEIGHTS.items()}
    return "Score: 4. Clear.", [("Score", {"Score": -0.1}), (":", {":": -0.1}), (" 4", tops), (".", {".": -0.2})]


def endpoint(server: JudgeServer, name: str = "judge-a", mode: str = "auto") -> JudgeSpec:
    return JudgeSpec(f"openai:{server.url}", name, mode)


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
    """An empty store on SQLite and on PostgreSQL (the rest of this module needs SQLite only)."""
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
