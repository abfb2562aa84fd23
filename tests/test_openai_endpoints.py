"""The openai backend at serving scale: several endpoints balanced by requests in flight, an endpoint that fails
taken out while the others answer, Retry-After and jittered backoff, and ``--concurrency`` really reached.

The endpoints are small fake servers (below) started through the tests' ``serving()`` helper; each records when
every request arrived and how many were in flight at once, so the tests measure what the server saw.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evaltune.harness.backends.base import BackendError, GenerationRequest
from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig
from evaltune.harness.suite import GenerationSettings
from tests.conftest import invoke_main
from tests.fixtures.answer_server import send_json, serving
from tests.fixtures.served_model import free_port

PLAIN = GenerationSettings(max_new_tokens=8, chat="never")


class InFlight:
    """Requests being answered right now, and the most there ever were (shared by servers to count them all)."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


class Endpoint(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint serving ``models``. Each POST waits ``delay_s``; the first ones get the
    answers in ``failures`` (status, headers), or every one gets ``always`` (a status); the others are answered
    "NAME: PROMPT" so that a test sees who answered what."""

    request_queue_size = 128  # many clients connect at once

    def __init__(self, name: str, models: tuple[str, ...] = ("m",), delay_s: float = 0.0,
                 failures: tuple[tuple[int, dict[str, str]], ...] = (), always: int = 0,
                 listing: dict[str, Any] | None = None, in_flight: InFlight | None = None, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.name, self.models, self.delay_s = name, models, delay_s
        self.failures, self.always, self.listing = failures, always, listing or {}
        self.in_flight = in_flight or InFlight()
        self.arrivals: list[float] = []  # time.monotonic() of each POST
        self.auth: list[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        entries = [{"id": model, "created": time.time(), **self.server.listing} for model in self.server.models]
        send_json(self, 200, {"object": "list", "data": entries})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server._lock:
            server.arrivals.append(time.monotonic())
            server.auth.append(self.headers.get("Authorization") or "")
            number = len(server.arrivals)
        with server.in_flight:
            time.sleep(server.delay_s)
        if number <= len(server.failures) or server.always:
            status, headers = server.failures[number - 1] if number <= len(server.failures) else (server.always, {})
            payload = json.dumps({"error": {"message": f"busy (auth {self.headers.get('Authorization')})"}}).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        text = f"{server.name}: {body.get('prompt', '')}"
        send_json(self, 200, {"choices": [{"text": text, "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 2}})


@contextmanager
def endpoints(*servers: Endpoint) -> Iterator[tuple[Endpoint, ...]]:
    with ExitStack() as stack:
        yield tuple(stack.enter_context(serving(server)) for server in servers)


def quick(base_url: str, **changes: Any) -> OpenAIConfig:
    """A config serving model "m" whose retries do not slow a test down (unless ``changes`` say otherwise)."""
    return OpenAIConfig(base_url, "m", **{"backoff_s": 0.01, "jitter_s": 0.0, **changes})


def ask(backend: OpenAIBackend, n: int) -> list[str]:
    """The texts of ``n`` numbered prompts, in request order."""
    return [c.text for c in backend.generate([GenerationRequest(f"q{i}", PLAIN) for i in range(n)])]


def gaps(arrivals: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


def test_two_endpoints_share_the_load_and_answer_in_order() -> None:
    with endpoints(Endpoint("a", delay_s=0.01), Endpoint("b", delay_s=0.01)) as (a, b):
        backend = OpenAIBackend(OpenAIConfig(f"{a.url},{b.url}", "m", concurrency=8))
        texts = ask(backend, 40)
    assert [t.split(": ")[1] for t in texts] == [f"q{i}" for i in range(40)]
    assert len(a.arrivals) + len(b.arrivals) == 40
    assert len(a.arrivals) >= 10 and len(b.arrivals) >= 10
    assert backend.requests_sent == {a.url: len(a.arrivals), b.url: len(b.arrivals)}


def test_a_slow_endpoint_gets_fewer_requests() -> None:
    with endpoints(Endpoint("slow", delay_s=0.3), Endpoint("fast", delay_s=0.01)) as (slow, fast):
        backend = OpenAIBackend(OpenAIConfig(f"{slow.url},{fast.url}", "m", concurrency=4))
        texts = ask(backend, 40)
    assert [t.split(": ")[1] for t in texts] == [f"q{i}" for i in range(40)]
    assert len(slow.arrivals) >= 1  # it is used, but never more than its share of what is in flight
    assert 3 * len(slow.arrivals) < len(fast.arrivals)


def test_a_closed_port_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with endpoints(Endpoint("b")) as (b,), caplog.at_level(logging.WARNING, logger="evaltune.openai"):
        backend = OpenAIBackend(OpenAIConfig(f"{closed},{b.url}", "m", concurrency=4))
        texts = ask(backend, 12)
    assert texts == [f"b: q{i}" for i in range(12)]
    assert backend.requests_sent == {closed: 0, b.url: 12}
    assert f"cannot reach {closed}" in caplog.text and "starting with the other 1 endpoint(s)" in caplog.text


def test_an_endpoint_answering_500_cools_down_and_the_other_answers_in_order() -> None:
    with endpoints(Endpoint("a", always=500), Endpoint("b", delay_s=0.01)) as (a, b):
        backend = OpenAIBackend(quick(f"{a.url},{b.url}", concurrency=4, max_retries=1))
        texts = ask(backend, 30)
    assert texts == [f"b: q{i}" for i in range(30)]
    assert 1 <= backend.requests_sent[a.url] <= 4  # only what was in flight before its first failure
    assert len(a.arrivals) == 2 * backend.requests_sent[a.url]  # each retried once there, then sent to b


def test_a_cooled_endpoint_is_asked_again_after_its_cool_down() -> None:
    port = free_port()
    late = f"http://127.0.0.1:{port}/v1"
    with endpoints(Endpoint("b")) as (b,):
        backend = OpenAIBackend(OpenAIConfig(f"{late},{b.url}", "m", cooldown_s=0.2))
        assert ask(backend, 2) == ["b: q0", "b: q1"]
        with serving(Endpoint("late", port=port)):  # it comes up after the start
            time.sleep(0.3)
            texts = ask(backend, 8)
    assert {t.split(":")[0] for t in texts} == {"late", "b"}


def test_all_endpoints_failing_names_each_and_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTUNE_OPENAI_API_KEY", "sk-very-secret")
    with endpoints(Endpoint("a", always=500), Endpoint("b", always=503)) as (a, b):
        backend = OpenAIBackend(quick(f"{a.url},{b.url}", concurrency=2, max_retries=1))
        with pytest.raises(BackendError) as caught:
            ask(backend, 200)
    message = str(caught.value)
    assert message.startswith("all 2 endpoints failed: ")
    assert f"{a.url}/completions answered 500" in message and f"{b.url}/completions answered 503" in message
    assert "sk-very-secret" not in message and "Bearer ***" in message
    assert a.auth[0] == "Bearer sk-very-secret"
    assert len(a.arrivals) + len(b.arrivals) < 20  # the rest of the batch was cancelled, not sent


def test_none_answering_at_start_names_each_endpoint() -> None:
    first, second = (f"http://127.0.0.1:{free_port()}/v1" for _ in range(2))
    with pytest.raises(BackendError, match=rf"none of the 2 endpoints answers: cannot reach {first}: .*; "
                                           rf"cannot reach {second}: "):
        OpenAIBackend(OpenAIConfig(f"{first},{second}", "m"))


def test_an_endpoint_serving_another_model_is_refused() -> None:
    with endpoints(Endpoint("a"), Endpoint("b", models=("other",))) as (a, b):
        refused = rf"{b.url} serves other, not 'm': every endpoint .* same model"
        with pytest.raises(BackendError, match=refused):
            OpenAIBackend(OpenAIConfig(f"{a.url},{b.url}", "m"))


def test_endpoints_describing_the_model_differently_are_refused() -> None:
    eight, seventy = Endpoint("a", listing={"root": "/w/llama-8b"}), Endpoint("b", listing={"root": "/w/llama-70b"})
    with endpoints(eight, seventy) as (a, b):
        refused = r"different models under the name 'm'.*llama-70b"
        with pytest.raises(BackendError, match=refused):
            OpenAIBackend(OpenAIConfig(f"{a.url},{b.url}", "m"))


def test_retry_after_in_seconds_is_honoured() -> None:
    with endpoints(Endpoint("a", failures=((429, {"Retry-After": "1"}),))) as (a,):
        backend = OpenAIBackend(quick(a.url))
        assert ask(backend, 1) == ["a: q0"]
    assert len(a.arrivals) == 2 and gaps(a.arrivals)[0] >= 1.0


def test_retry_after_as_an_http_date_is_honoured() -> None:
    wall, monotonic = time.time(), time.monotonic()
    retry_at = int(wall) + 3  # a moment in whole seconds, as an HTTP date says it
    with endpoints(Endpoint("a", failures=((503, {"Retry-After": formatdate(retry_at, usegmt=True)}),))) as (a,):
        backend = OpenAIBackend(quick(a.url))
        assert ask(backend, 1) == ["a: q0"]
    # The retry came no earlier than the date said, however long the start took on a busy machine.
    assert len(a.arrivals) == 2 and wall + (a.arrivals[1] - monotonic) >= retry_at - 0.05


def test_a_long_retry_after_is_cut_to_the_cap() -> None:
    with endpoints(Endpoint("a", failures=((429, {"Retry-After": "3600"}),))) as (a,):
        backend = OpenAIBackend(quick(a.url, max_retry_after_s=1))
        assert ask(backend, 1) == ["a: q0"]
    assert 0.9 <= gaps(a.arrivals)[0] < 10


def test_a_retry_after_that_is_neither_seconds_nor_a_date_means_the_usual_backoff() -> None:
    with endpoints(Endpoint("a", failures=((503, {"Retry-After": "soon"}),))) as (a,):
        assert ask(OpenAIBackend(quick(a.url)), 1) == ["a: q0"]
    assert len(a.arrivals) == 2 and gaps(a.arrivals)[0] < 1.0


def test_a_lone_endpoint_is_asked_again_by_the_next_request_after_a_failure() -> None:
    with endpoints(Endpoint("a", failures=((500, {}),) * 2)) as (a,):
        backend = OpenAIBackend(quick(a.url, max_retries=1))
        with pytest.raises(BackendError, match=r"answered 500: busy .* \(after 1 retries\)$"):
            ask(backend, 1)
        assert ask(backend, 1) == ["a: q0"]  # no cool-down: there is no other endpoint to wait for


def test_backoff_without_retry_after_is_exponential_with_jitter() -> None:
    backoff, jitter = 0.05, 0.5
    with endpoints(Endpoint("a", failures=((503, {}),) * 6)) as (a,):
        backend = OpenAIBackend(OpenAIConfig(a.url, "m", max_retries=6, backoff_s=backoff, jitter_s=jitter))
        assert ask(backend, 1) == ["a: q0"]
    waits = gaps(a.arrivals)
    assert len(waits) == 6 and waits[0] < 0.2  # the first retry goes at once
    doubling = [backoff * 2**n for n in range(5)]  # before retries 2..6 without jitter: 0.05, 0.1, 0.2, ...
    extra = [wait - fixed for wait, fixed in zip(waits[1:], doubling, strict=True)]
    assert all(-0.02 < e < jitter + 0.3 for e in extra), extra  # never sooner than the doubling, jitter bounded
    assert max(extra) - min(extra) > 0.03, extra  # random: not the same fixed doubling every time


def test_concurrency_is_reached_and_shared_between_endpoints() -> None:
    shared = InFlight()
    with endpoints(Endpoint("a", delay_s=0.3, in_flight=shared), Endpoint("b", delay_s=0.3, in_flight=shared)
                   ) as (a, b):
        backend = OpenAIBackend(OpenAIConfig(f"{a.url},{b.url}", "m", concurrency=16))
        ask(backend, 48)
    assert shared.most == 16


def test_one_endpoint_keeps_the_fingerprint_it_always_had() -> None:
    with endpoints(Endpoint("a", listing={"owned_by": "me"})) as (a,):
        fingerprint = OpenAIBackend(OpenAIConfig(a.url, "m")).fingerprint
    payload = {"base_url": a.url, "model": "m", "listing": {"id": "m", "owned_by": "me"}}
    assert fingerprint == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def test_several_endpoints_are_one_model_whatever_their_order() -> None:
    with endpoints(Endpoint("a"), Endpoint("b")) as (a, b):
        both = OpenAIBackend(OpenAIConfig(f"{a.url},{b.url}", "m")).fingerprint
        assert OpenAIBackend(OpenAIConfig(f"{b.url}, {a.url}/", "m")).fingerprint == both
        assert OpenAIBackend(OpenAIConfig(a.url, "m")).fingerprint != both  # another set of servers


def test_a_judge_over_two_endpoints_fails_over_too() -> None:
    from evaltune.harness.judges.clients import JudgePrompt, load_client
    from evaltune.harness.judges.config import JudgeSpec

    with endpoints(Endpoint("a", always=502), Endpoint("b")) as (a, b):
        judge = load_client(JudgeSpec(f"openai:{a.url},{b.url}", "m", mode="completions"))
        replies = judge.ask([JudgePrompt(f"q{i}", ("yes", "no")) for i in range(6)])
    assert [r.text for r in replies] == [f"b: q{i}" for i in range(6)]
    assert len(a.arrivals) >= 1  # it was tried, failed after its retries, and its requests went to b


def _suite(tmp_path: Path, n: int) -> Path:
    items = "".join(f"  - {{id: q{i}, input: 'question {i}'}}\n" for i in range(n))
    path = tmp_path / "many.yaml"
    path.write_text(f"name: many\ngeneration: {{chat: never, max_new_tokens: 4}}\nscorers: [length]\n"
                    f"items:\n{items}", encoding="utf-8")
    return path


def test_evaltune_run_over_two_endpoints_at_concurrency_16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaltune.db.evaluation import Generation, Run
    from evaltune.store import store_session

    shared = InFlight()
    suite = _suite(tmp_path, 48)
    with endpoints(Endpoint("a", delay_s=0.2, in_flight=shared), Endpoint("b", delay_s=0.2, in_flight=shared)
                   ) as (a, b):
        args = ["run", str(suite), "--model", f"openai:{a.url},{b.url}", "--model-name", "m", "--concurrency", "16",
                "--json"]
        code, out, err = invoke_main(args, monkeypatch, capsys)
        assert code == 0, err
        run_id = json.loads(out[out.index("{"):])["run_id"]
        assert shared.most == 16 and len(a.arrivals) >= 8 and len(b.arrivals) >= 8
        sent = len(a.arrivals) + len(b.arrivals)
        # The same endpoints in the other order are the same model: the completed run is the answer, not redone.
        again = ["run", str(suite), "--model", f"openai:{b.url},{a.url}", "--model-name", "m", "--json"]
        code, out, err = invoke_main(again, monkeypatch, capsys)
        assert code == 0, err
        assert json.loads(out[out.index("{"):])["run_id"] == run_id
        assert len(a.arrivals) + len(b.arrivals) == sent
    with store_session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.model_version.location == f"{a.url},{b.url}"
        outputs = {g.item.key: g.output for g in session.query(Generation).filter_by(run_id=run_id)}
    assert len(outputs) == 48
    assert all(text.split(": ")[1] == f"question {key[1:]}" for key, text in outputs.items())


def test_evaltune_run_refuses_when_no_endpoint_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = (f"http://127.0.0.1:{free_port()}/v1" for _ in range(2))
    args = ["run", "smoke", "--model", f"openai:{first},{second}", "--model-name", "m"]
    code, _out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"none of the 2 endpoints answers: cannot reach {first}" in err and f"cannot reach {second}" in err


def test_evaltune_run_starts_with_the_endpoints_that_answer_and_names_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with endpoints(Endpoint("b")) as (b,), caplog.at_level(logging.WARNING, logger="evaltune.openai"):
        args = ["run", str(_suite(tmp_path, 4)), "--model", f"openai:{closed},{b.url}", "--model-name", "m"]
        code, _out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 0, err
    # A warning on stderr (pytest's log capture holds it here): the run goes on with the endpoint that answers.
    assert f"cannot reach {closed}" in caplog.text and "starting with the other 1 endpoint(s)" in caplog.text
    assert len(b.arrivals) == 4
