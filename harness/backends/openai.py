"""The ``openai`` backend: any OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, Ollama, transformers serve),
or several serving the same model (``http://a:8000/v1,http://b:8000/v1``).

Plain ``requests`` with a thread pool: up to ``concurrency`` requests in flight, shared among the endpoints (each
request goes to the one with the fewest in flight), answers in request order. Retries, Retry-After and the
cool-down of a failing endpoint are in ``openai_endpoints``. The API key is read from the environment and only
ever put in the Authorization header, never in a message or a log line: every error this backend raises has the
key (and any password written into a URL) replaced by ``***``, because servers and proxies echo headers and URLs
back in their error messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import requests

from evaltune import settings
from evaltune.harness.backends.base import (
    Accepts,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    OutputsDone,
    Prompt,
)
from evaltune.harness.backends.openai_endpoints import (
    RETRY_STATUS,
    Endpoints,
    check_probes,
    probe,
    reason,
    retrying_session,
)
from evaltune.harness.backends.registry import DEFAULT_CONCURRENCY
from evaltune.harness.prompts import render_prompt
from evaltune.harness.suite import GenerationSettings, Item

MODES = ("auto", "chat", "completions")
_MAX_STOPS = 4  # the OpenAI API accepts at most four stop strings; the rest are applied client-side
_log = logging.getLogger("evaltune.openai")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class OpenAIConfig:
    """An endpoint (``base_url`` ends in /v1), or several separated by commas, and the model name they serve."""

    base_url: str
    model: str
    mode: str = "auto"  # auto: chat messages, or text where the suite says chat: never (harness.prompts)
    api_key: str | None = field(default=None, repr=False)  # None: EVALTUNE_OPENAI_API_KEY, then OPENAI_API_KEY
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight, shared among the endpoints
    max_retries: int = 4  # per request and endpoint, on connection errors, 429 and 5xx
    backoff_s: float = 0.5  # the wait before the second retry, doubling after (the first is at once)
    jitter_s: float = 0.5  # up to this much more, at random, so that clients do not retry in step
    max_retry_after_s: int = 60  # a Retry-After asking for longer is cut to this
    cooldown_s: float = 30.0  # an endpoint that failed a request after its retries gets none for this long
    timeout_s: float = 300.0
    connect_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BackendError(f"openai mode '{self.mode}' is not one of {', '.join(MODES)}")
        for url in self.base_urls:
            if not url.startswith(("http://", "https://")):
                raise BackendError(f"'{url}' is not an http(s) URL; write openai:http://HOST:PORT/v1")
        if not self.model:
            raise BackendError(f"no model name for {self.base_url}; pass the name the server serves")
        if self.concurrency < 1 or self.max_retries < 0:
            raise BackendError("concurrency must be at least 1 and max_retries at least 0")
        if min(self.backoff_s, self.jitter_s, self.max_retry_after_s, self.cooldown_s) < 0:
            raise BackendError("backoff_s, jitter_s, max_retry_after_s and cooldown_s must be at least 0")

    @property
    def base_urls(self) -> tuple[str, ...]:
        """Each endpoint's base URL, in the order given."""
        return tuple(url.strip().rstrip("/") for url in self.base_url.split(","))


class EndpointRefused(BackendError):
    """The server answered a request with an error that retrying cannot fix (``status``: 400, 401, 404, ...)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ScoredCompletion:
    """A greedy answer with what the server said about its first tokens: ``tokens`` as generated and, per token,
    ``top_logprobs`` (the most likely tokens there with their log-probabilities). Both are empty when the server
    sends no log-probabilities (transformers serve, some proxies)."""

    text: str
    tokens: tuple[str, ...] = ()
    top_logprobs: tuple[dict[str, float], ...] = ()


class OpenAIBackend:
    """Generation (and, where the server returns prompt log-probs, log-likelihoods) over HTTP."""

    def __init__(self, config: OpenAIConfig):
        self.config = config
        urls = config.base_urls
        self.base_url = ",".join(urls)  # as the user wrote it, for messages
        # A lone endpoint never cools down: there is nowhere else to send its requests, so each one tries it.
        self._endpoints = Endpoints(urls, config.cooldown_s if len(urls) > 1 else 0.0)
        self._session = retrying_session(config.concurrency, len(urls), config.max_retries, config.backoff_s,
                                         config.jitter_s, config.max_retry_after_s)
        key = config.api_key or settings.openai_api_key()
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self._session.headers.update(self._auth)
        passwords = [urlsplit(url).password or "" for url in urls]
        self._secrets = [s for s in (key, *passwords, *map(unquote, passwords)) if s]
        with self._hiding():
            listing = self._probe_all()
        self._fingerprint = _fingerprint(urls, config.model, listing)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def accepts(self) -> Accepts:
        """Both forms in mode auto; only chat messages in mode chat; only text in mode completions."""
        if self.config.mode == "auto":
            return Accepts()
        only = "chat messages" if self.config.mode == "chat" else "text"
        limit = f"{self.base_url} is used in {self.config.mode} mode, which takes {only} only"
        return Accepts(text=self.config.mode == "completions", chat=self.config.mode == "chat", limit=limit)

    def model_input(self, prompt: Prompt) -> Prompt:
        """The prompt as it is sent: messages to /chat/completions (the server applies its chat template),
        text to /completions. Raises BackendError for a form this endpoint's mode does not take."""
        accepts = self.accepts
        if not (accepts.chat if isinstance(prompt, tuple) else accepts.text):
            raise BackendError(f"{accepts.limit}; use mode auto")
        return prompt

    def render(self, prompt: Prompt, settings: GenerationSettings) -> Prompt:
        """What is sent for a bare prompt under ``settings`` (for scripts; the runner renders items with
        ``harness.prompts.prompt_for``: the same two steps)."""
        return self.model_input(render_prompt(Item("prompt", prompt), settings, self.accepts))

    @property
    def requests_sent(self) -> Mapping[str, int]:
        """How many requests each endpoint has been sent (a retry on the same endpoint is not counted again)."""
        return self._endpoints.sent()

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        """One completion per request, in request order; up to ``concurrency`` requests in flight.
        ``on_output`` (see ``Backend.generate``) is told of each answer as it arrives, in the calling thread."""
        return self._in_flight(self._generate_one, requests, on_output)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """Via /completions with echo and logprobs, as lm-eval's local-completions does. Raises BackendError
        when the endpoint does not return prompt log-probabilities."""
        return self._in_flight(self._loglikelihood_one, requests)

    def complete_with_logprobs(self, prompts: Sequence[Prompt], max_tokens: int,
                               top_logprobs: int = 20) -> list[ScoredCompletion]:
        """Greedy answers of at most ``max_tokens`` tokens, asking for the ``top_logprobs`` most likely tokens at
        each position (a judge reads its verdict there): chat messages go to /chat/completions (``logprobs``,
        ``top_logprobs``), text to /completions (``logprobs: N``). A server that refuses log-probabilities
        (400 naming them) is asked again without; one that ignores them gives empty ``top_logprobs``.
        In request order, ``concurrency`` in flight, with this backend's retries; errors never show a secret."""
        return self._in_flight(lambda prompt: self._scored_one(prompt, max_tokens, top_logprobs), prompts)

    def close(self) -> None:
        self._session.close()

    def _in_flight(self, work: Callable[[T], R], items: Sequence[T], on_output: OutputsDone | None = None) -> list[R]:
        """``work`` on every item, up to ``concurrency`` at once, results in item order. The first failure cancels
        what has not started (a dead cluster must not be asked thousands more times) and is raised."""
        if not items:
            return []
        with self._hiding(), ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(items))) as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                for future in as_completed(futures):
                    future.result()
                    if on_output is not None:
                        on_output(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            return [future.result() for future in futures]

    @contextmanager
    def _hiding(self) -> Iterator[None]:
        """Re-raise a ``BackendError`` with the API key and URL password replaced by ``***``, and without its
        cause: a server may echo the Authorization header, and a requests error repeats the URL."""
        try:
            yield
        except BackendError as error:
            message = self._hidden(str(error))
            if message == str(error):
                raise
            if isinstance(error, EndpointRefused):  # its status still decides what the caller tries next
                raise EndpointRefused(message, error.status) from None
            raise BackendError(message) from None

    def _generate_one(self, request: GenerationRequest) -> Completion:
        settings, prompt = request.settings, self.model_input(request.prompt)
        chat = isinstance(prompt, tuple)
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": request.seed,
        }
        if settings.stop:
            body["stop"] = list(settings.stop[:_MAX_STOPS])
        if isinstance(prompt, tuple):
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
        else:
            body["prompt"] = prompt
        started = time.perf_counter()
        data = self._post("/chat/completions" if chat else "/completions", body)
        latency = time.perf_counter() - started
        return _completion(data, chat, settings.stop, latency)

    def _scored_one(self, prompt: Prompt, max_tokens: int, top_logprobs: int) -> ScoredCompletion:
        prompt = self.model_input(prompt)
        chat = isinstance(prompt, tuple)
        body: dict[str, Any] = {"model": self.config.model, "max_tokens": max_tokens, "temperature": 0.0}
        if isinstance(prompt, tuple):
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
            asking = {"logprobs": True, "top_logprobs": top_logprobs}
        else:
            body["prompt"] = prompt
            asking = {"logprobs": top_logprobs}
        path = "/chat/completions" if chat else "/completions"
        try:
            data = self._post(path, {**body, **asking})
        except EndpointRefused as error:
            if error.status not in (400, 422) or "logprob" not in str(error).lower():
                raise
            data = self._post(path, body)  # a server that takes no log-probabilities: its answer is read instead
        return _scored_completion(data, chat)

    def _loglikelihood_one(self, request: LoglikelihoodRequest) -> Loglikelihood:
        # lm-eval's convention: trailing spaces of the context belong to the continuation.
        context = request.context.rstrip()
        continuation = request.context[len(context) :] + request.continuation
        prompt = context + continuation
        # max_tokens=1, not 0: several servers reject 0; the one generated token is dropped below.
        body = {"model": self.config.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0}
        data = self._post("/completions", {**body, "echo": True, "logprobs": 1})
        logprobs = ((data.get("choices") or [{}])[0]).get("logprobs") or {}
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        if not offsets or not values:
            raise BackendError(
                f"{self.base_url} does not return prompt log-probabilities (echo + logprobs on /completions), "
                "so multiple-choice items cannot be scored there; use an hf model or a server that does (vLLM)"
            )
        tops = logprobs.get("top_logprobs") or [None] * len(values)
        picked = [i for i, off in enumerate(offsets) if len(context) <= off < len(prompt) and values[i] is not None]
        total = sum(float(values[i]) for i in picked)
        greedy = all(tops[i] is None or float(values[i]) >= max(tops[i].values()) - 1e-6 for i in picked)
        return Loglikelihood(total, greedy, len(picked))

    def _probe_all(self) -> Mapping[str, Any] | None:
        """Ask every endpoint what it serves, at once. Refuses (BackendError) when none answers or, with several,
        when they serve different models; one that does not answer cools down, with a warning naming it."""
        urls = self.config.base_urls
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            probes = list(pool.map(lambda url: probe(url, self.config.model, self._auth, self.config.connect_timeout_s),
                                   urls))
        listing = check_probes(probes, self.config.model)
        silent = [p for p in probes if p.problem is not None]
        for p in silent:
            self._endpoints.set_down(p.url, str(p.problem))
        if silent:
            _log.warning("%s; starting with the other %d endpoint(s), asking again after %.0f s",
                         self._hidden("; ".join(str(p.problem) for p in silent)), len(urls) - len(silent),
                         self.config.cooldown_s)
        return listing

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the endpoint with the fewest requests in flight; when it fails after its retries, cool it down
        and send the request to another. Raises BackendError, naming each endpoint's last error, when none is left;
        EndpointRefused at once for an answer that retrying cannot fix (4xx other than 429)."""
        tried: set[str] = set()
        while (endpoint := self._endpoints.take(tried)) is not None:
            tried.add(endpoint.url)
            try:
                data = self._post_to(endpoint.url + path, body)
            except _EndpointDown as down:
                self._endpoints.done(endpoint, str(down))
                continue
            except BaseException:
                self._endpoints.done(endpoint)
                raise
            self._endpoints.done(endpoint)
            return data
        raise BackendError(self._endpoints.failure())

    def _post_to(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """One POST, with the session's retries on this endpoint. Raises _EndpointDown when it still failed."""
        try:
            response = self._session.post(url, json=body, timeout=(self.config.connect_timeout_s,
                                                                   self.config.timeout_s))
        except requests.ReadTimeout as exc:
            raise _EndpointDown(f"{url} did not answer within {self.config.timeout_s:.0f} s") from exc
        except requests.RequestException as exc:  # refused or reset, still after the retries
            raise _EndpointDown(f"cannot reach {url}: {reason(exc)}; is the server running? "
                                f"(after {self.config.max_retries} retries)") from exc
        if response.ok:
            return _json(response, url)
        problem = f"{url} answered {response.status_code}: {_server_message(response)}"
        if response.status_code in RETRY_STATUS:
            raise _EndpointDown(f"{problem} (after {self.config.max_retries} retries)")
        raise EndpointRefused(problem, response.status_code)

    def _hidden(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _EndpointDown(Exception):
    """An endpoint failed a request after its retries (never leaves this module: another endpoint is tried)."""


def _completion(data: dict[str, Any], chat: bool, stops: Sequence[str], latency: float) -> Completion:
    choice = (data.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    text = text or ""
    reason = "length" if choice.get("finish_reason") == "length" else "stop"
    # Servers differ in whether they honour stop (and at most four): cut client-side as well.
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency,
        finish_reason=reason,
    )


def _scored_completion(data: dict[str, Any], chat: bool) -> ScoredCompletion:
    """The answer and its tokens' top log-probabilities, from either API's ``logprobs`` shape: chat gives
    ``content: [{token, logprob, top_logprobs: [{token, logprob}]}]``, completions ``tokens`` and
    ``top_logprobs: [{token: logprob}]``."""
    choice = (data.get("choices") or [{}])[0]
    logprobs = choice.get("logprobs") or {}
    if chat:
        text = (choice.get("message") or {}).get("content") or ""
        content = logprobs.get("content") or [] if isinstance(logprobs, dict) else []
        tokens = tuple(str(t.get("token", "")) for t in content)
        tops = tuple({str(e["token"]): float(e["logprob"]) for e in t.get("top_logprobs") or []
                      if e.get("logprob") is not None} for t in content)
    else:
        text = choice.get("text") or ""
        tokens = tuple(str(t) for t in logprobs.get("tokens") or [])
        tops = tuple({str(k): float(v) for k, v in (top or {}).items() if v is not None}
                     for top in logprobs.get("top_logprobs") or [])
    if len(tops) != len(tokens):  # a server that sends one without the other: neither can be placed
        tokens, tops = (), ()
    return ScoredCompletion(text, tokens, tops)


def _fingerprint(urls: Sequence[str], model: str, listing: Mapping[str, Any] | None) -> str:
    """One endpoint: from its URL, the model name and the stable fields of its /models entry, as always. Several:
    the same, over the set of URLs (their order does not matter), since one name at other addresses may be
    other weights, and a cache filled by one cluster must not answer for another."""
    where: dict[str, Any] = {"base_url": urls[0]} if len(urls) == 1 else {"base_urls": sorted(urls)}
    payload = {**where, "model": model, "listing": dict(listing or {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _json(response: requests.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise BackendError(f"{url} answered with something that is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise BackendError(f"{url} answered with JSON that is not an object: {str(data)[:200]}")
    return data


def _server_message(response: requests.Response) -> str:
    try:
        data = response.json()
        error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return response.text[:300] or response.reason
