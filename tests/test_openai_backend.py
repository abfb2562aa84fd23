"""The openai backend against a real ``transformers serve`` of the tiny model, and a small fake server for
what transformers serve does not do (retries, log-probs, errors)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evaltune.harness.backends.base import BackendError, GenerationRequest, LoglikelihoodRequest
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig
from evaltune.harness.suite import GenerationSettings, Message
from tests.fixtures.answer_server import send_json
from tests.fixtures.served_model import free_port

GREEDY = GenerationSettings(max_new_tokens=8)
PLAIN = GenerationSettings(max_new_tokens=8, chat="never")


@pytest.fixture(scope="module")
def local(tiny_model_dir: Path) -> HFBackend:
    return HFBackend(HFConfig(str(tiny_model_dir), threads=1))


def test_chat_generation_matches_the_hf_backend(served: tuple[str, str], local: HFBackend) -> None:
    url, model = served
    backend = OpenAIBackend(OpenAIConfig(url, model, mode="chat"))
    assert backend.render("Hello", GREEDY) == (Message("user", "Hello"),)
    remote = backend.generate([GenerationRequest(backend.render("Hello", GREEDY), GREEDY)])[0]
    here = local.generate([GenerationRequest(str(local.render("Hello", GREEDY)), GREEDY)])[0]
    assert remote.text == here.text  # same chat template, same greedy decoding
    assert (remote.prompt_tokens, remote.completion_tokens) == (here.prompt_tokens, here.completion_tokens)
    assert remote.finish_reason == "length"


def test_completions_generation_matches_the_hf_backend(served: tuple[str, str], local: HFBackend) -> None:
    url, model = served
    backend = OpenAIBackend(OpenAIConfig(url, model, mode="auto"))
    assert backend.render("The capital of France is", PLAIN) == "The capital of France is"
    remote = backend.generate([GenerationRequest("The capital of France is", PLAIN)])[0]
    here = local.generate([GenerationRequest("The capital of France is", PLAIN)])[0]
    assert remote.text == here.text
    assert remote.completion_tokens == 8 and remote.prompt_tokens == here.prompt_tokens


def test_concurrent_requests_come_back_in_order(served: tuple[str, str]) -> None:
    url, model = served
    prompts = [f"Question {i}: what is {i} plus {i}?" for i in range(6)]
    requests_ = [GenerationRequest(p, PLAIN) for p in prompts]
    parallel = OpenAIBackend(OpenAIConfig(url, model, concurrency=4)).generate(requests_)
    sequential = OpenAIBackend(OpenAIConfig(url, model, concurrency=1)).generate(requests_)
    assert [c.text for c in parallel] == [c.text for c in sequential]
    assert len({c.text for c in parallel}) > 1


def test_transformers_serve_has_no_prompt_logprobs(served: tuple[str, str]) -> None:
    url, model = served
    backend = OpenAIBackend(OpenAIConfig(url, model))
    with pytest.raises(BackendError, match="does not return prompt log-probabilities"):
        backend.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])


def test_unreachable_endpoint_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(BackendError, match=rf"cannot reach {url}: .*is the server running\?"):
        OpenAIBackend(OpenAIConfig(url, "m"))
    assert time.perf_counter() - started < 5


class FakeServer(ThreadingHTTPServer):
    """Answers like an OpenAI server after ``failures`` 503s; records what it was sent."""

    def __init__(self, failures: int = 0, status: int = 503):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.failures, self.status = failures, status
        self.posts: list[dict[str, Any]] = []
        self.auth: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        send_json(self, status, payload)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "fake", "created": time.time(), "owned_by": "me"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append(body)
        self.server.auth.append(self.headers.get("Authorization"))
        if len(self.server.posts) <= self.server.failures:
            return self._send(self.server.status, {"error": {"message": "try again later"}})
        if body.get("echo"):
            return self._send(200, _echo_answer())
        usage = {"prompt_tokens": 3, "completion_tokens": 5}
        choice = {"message": {"role": "assistant", "content": "hello STOP world"}, "finish_reason": "length"}
        self._send(200, {"choices": [choice], "usage": usage})


def _echo_answer() -> dict[str, Any]:
    # "The sky is" + " blue" echoed as four tokens, plus one generated token that must be ignored.
    logprobs = {
        "tokens": ["The", " sky", " is", " blue", "."],
        "token_logprobs": [None, -2.0, -1.0, -0.5, -3.0],
        "text_offset": [0, 3, 7, 10, 15],
        "top_logprobs": [None, {" sky": -2.0}, {" was": -0.7}, {" blue": -0.5}, {".": -3.0}],
    }
    return {"choices": [{"text": "The sky is blue.", "logprobs": logprobs}]}


@pytest.fixture()
def fake(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    failures, status = getattr(request, "param", (0, 503))
    server = FakeServer(failures, status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fake", [(2, 503)], indirect=True)
def test_retries_with_backoff_then_succeeds(fake: FakeServer) -> None:
    backend = OpenAIBackend(OpenAIConfig(fake.url, "fake", backoff_s=0.01))
    settings = GenerationSettings(max_new_tokens=5, stop=("STOP",), temperature=0.7)
    [completion] = backend.generate([GenerationRequest(backend.render("Hi", settings), settings, seed=3)])
    assert len(fake.posts) == 3
    assert completion.text == "hello " and completion.finish_reason == "stop"  # cut client-side too
    assert (completion.prompt_tokens, completion.completion_tokens) == (3, 5)
    sent = fake.posts[-1]
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]
    assert (sent["stop"], sent["seed"], sent["temperature"], sent["max_tokens"]) == (["STOP"], 3, 0.7, 5)


@pytest.mark.parametrize("fake", [(9, 503)], indirect=True)
def test_gives_up_after_max_retries(fake: FakeServer) -> None:
    backend = OpenAIBackend(OpenAIConfig(fake.url, "fake", backoff_s=0.01, max_retries=2))
    with pytest.raises(BackendError, match=r"answered 503: try again later \(after 2 retries\)"):
        backend.generate([GenerationRequest("Hi", GREEDY)])
    assert len(fake.posts) == 3


@pytest.mark.parametrize("fake", [(1, 401)], indirect=True)
def test_client_errors_are_not_retried_and_never_show_the_key(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTUNE_OPENAI_API_KEY", "sk-very-secret")
    backend = OpenAIBackend(OpenAIConfig(fake.url, "fake", backoff_s=0.01))
    with pytest.raises(BackendError) as caught:
        backend.generate([GenerationRequest("Hi", GREEDY)])
    assert "401" in str(caught.value) and "sk-very-secret" not in str(caught.value)
    assert len(fake.posts) == 1 and fake.auth == ["Bearer sk-very-secret"]


def test_loglikelihood_from_echoed_prompt_logprobs(fake: FakeServer) -> None:
    backend = OpenAIBackend(OpenAIConfig(fake.url, "fake"))
    [result] = backend.loglikelihood([LoglikelihoodRequest("The sky is ", "blue")])
    assert fake.posts[0]["prompt"] == "The sky is blue" and fake.posts[0]["echo"] is True
    assert (result.logprob, result.tokens, result.is_greedy) == (-0.5, 1, True)
    [longer] = backend.loglikelihood([LoglikelihoodRequest("The sky", " is blue")])
    assert (longer.logprob, longer.tokens, longer.is_greedy) == (-1.5, 2, False)


def test_fingerprint_uses_stable_listing_fields(fake: FakeServer) -> None:
    first = OpenAIBackend(OpenAIConfig(fake.url, "fake")).fingerprint
    assert OpenAIBackend(OpenAIConfig(fake.url, "fake")).fingerprint == first  # "created" changes, ignored
    assert OpenAIBackend(OpenAIConfig(fake.url, "other")).fingerprint != first


def test_each_mode_refuses_the_form_it_cannot_send(fake: FakeServer) -> None:
    completions = OpenAIBackend(OpenAIConfig(fake.url, "fake", mode="completions"))
    with pytest.raises(BackendError, match=r"item 'prompt' is chat messages, but .* completions mode"):
        completions.render((Message("user", "Hi"),), GREEDY)
    with pytest.raises(BackendError, match=r"chat: always, but .* completions mode"):
        completions.render("Hi", GenerationSettings(chat="always"))
    assert completions.render("Hi", GREEDY) == "Hi"  # chat: auto takes text where chat is not on offer
    chat = OpenAIBackend(OpenAIConfig(fake.url, "fake", mode="chat"))
    with pytest.raises(BackendError, match=r"chat: never, but .* chat mode"):
        chat.render("Hi", PLAIN)
    with pytest.raises(BackendError, match="chat mode, which takes chat messages only; use mode auto"):
        chat.generate([GenerationRequest("Hi", PLAIN)])  # an unrendered text prompt is refused, not rewrapped
    assert fake.posts == []


def test_evaltune_run_against_the_served_model_stores_a_scored_run(
    served: tuple[str, str], tiny_model_dir: Path
) -> None:
    from click.testing import CliRunner

    from evaltune.cli import cli
    from evaltune.store import store_session

    base_url, model_name = served
    args = ["run", "smoke", "--model", f"openai:{base_url}", "--model-name", model_name, "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["stats"]["generated"] == summary["stats"]["outputs"] > 0
    assert {m["name"] for m in summary["metrics"]} >= {"answer_match", "abstention"}
    with store_session() as session:
        from evaltune.db.evaluation import Run

        run = session.get(Run, summary["run_id"])
        assert run is not None and run.status == "completed"
        assert run.model_version.backend == "openai" and run.model_version.served_model == model_name
