"""The ``openai`` backend: any OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, Ollama, transformers serve).

Plain ``requests`` with a thread pool: requests go out concurrently and come back in request order;
connection errors, 429 and 5xx are retried with exponential backoff. The API key is read from the
environment and only ever put in the Authorization header, never in a message or a log line: every error
this backend raises has the key (and any password written into the URL) replaced by ``***``, because servers
and proxies echo headers and URLs back in their error messages.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
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
from evaltune.harness.prompts import render_prompt
from evaltune.harness.suite import GenerationSettings, Item

MODES = ("auto", "chat", "completions")
_RETRY_STATUS = {429, 500, 502, 503, 504}
_MAX_STOPS = 4  # the OpenAI API accepts at most four stop strings; the rest are applied client-side


@dataclass(frozen=True)
class OpenAIConfig:
    """An endpoint (``base_url`` ends in /v1) and the model name it serves."""

    base_url: str
    model: str
    mode: str = "auto"  # auto: chat messages, or text where the suite says chat: never (harness.prompts)
    api_key: str | None = field(default=None, repr=False)  # None: EVALTUNE_OPENAI_API_KEY, then OPENAI_API_KEY
    concurrency: int = 8
    max_retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 300.0
    connect_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BackendError(f"openai mode '{self.mode}' is not one of {', '.join(MODES)}")
        if not self.base_url.startswith(("http://", "https://")):
            raise BackendError(f"'{self.base_url}' is not an http(s) URL; write openai:http://HOST:PORT/v1")
        if not self.model:
            raise BackendError(f"no model name for {self.base_url}; pass the name the server serves")
        if self.concurrency < 1 or self.max_retries < 0:
            raise BackendError("concurrency must be at least 1 and max_retries at least 0")


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
        self.base_url = config.base_url.rstrip("/")
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=config.concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        key = config.api_key or settings.openai_api_key()
        if key:
            self._session.headers["Authorization"] = f"Bearer {key}"
        password = urlsplit(self.base_url).password
        self._secrets = [s for s in (key, password, unquote(password or "")) if s]
        with self._hiding():
            self._listing = self._probe()
        self._fingerprint = _fingerprint(self.base_url, config.model, self._listing)

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

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        """One completion per request, in request order; up to ``concurrency`` requests in flight.
        ``on_output`` (see ``Backend.generate``) is told of each answer as it arrives, in the calling thread."""
        with self._hiding(), ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = [pool.submit(self._generate_one, request) for request in requests]
            for future in as_completed(futures):
                future.result()  # the first failure stops the batch here
                if on_output is not None:
                    on_output(1)
            return [future.result() for future in futures]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """Via /completions with echo and logprobs, as lm-eval's local-completions does. Raises BackendError
        when the endpoint does not return prompt log-probabilities."""
        with self._hiding(), ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(self._loglikelihood_one, requests))

    def complete_with_logprobs(self, prompts: Sequence[Prompt], max_tokens: int,
                               top_logprobs: int = 20) -> list[ScoredCompletion]:
        """Greedy answers of at most ``max_tokens`` tokens, asking for the ``top_logprobs`` most likely tokens at
        each position (a judge reads its verdict there): chat messages go to /chat/completions (``logprobs``,
        ``top_logprobs``), text to /completions (``logprobs: N``). A server that refuses log-probabilities
        (400 naming them) is asked again without; one that ignores them gives empty ``top_logprobs``.
        In request order, ``concurrency`` in flight, with this backend's retries; errors never show a secret."""
        with self._hiding(), ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(lambda prompt: self._scored_one(prompt, max_tokens, top_logprobs), prompts))

    def close(self) -> None:
        self._session.close()

    @contextmanager
    def _hiding(self) -> Iterator[None]:
        """Re-raise a ``BackendError`` with the API key and URL password replaced by ``***``, and without its
        cause: a server may echo the Authorization header, and a requests error repeats the URL."""
        try:
            yield
        except BackendError as error:
            message = str(error)
            for secret in self._secrets:
                message = message.replace(secret, "***")
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

    def _probe(self) -> dict[str, Any] | None:
        """GET /models with a short connect timeout: fails fast when nothing listens. Returns the entry for
        our model when the server lists it (not every server can: transformers serve fails on local folders)."""
        try:
            response = self._session.get(self.base_url + "/models", timeout=(self.config.connect_timeout_s, 30))
        except requests.RequestException as exc:
            raise BackendError(f"cannot reach {self.base_url}: {_reason(exc)}; is the server running?") from exc
        if response.status_code == 401:
            raise BackendError(f"{self.base_url} refused the API key (401); set EVALTUNE_OPENAI_API_KEY")
        try:
            entries = response.json().get("data", []) if response.ok else []
        except ValueError:
            entries = []
        return next((e for e in entries if isinstance(e, dict) and e.get("id") == self.config.model), None)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors, 429 and 5xx (exponential backoff, Retry-After honoured)."""
        url = self.base_url + path
        timeout = (self.config.connect_timeout_s, self.config.timeout_s)
        for attempt in range(self.config.max_retries + 1):
            wait = self.config.backoff_s * 2**attempt
            try:
                response = self._session.post(url, json=body, timeout=timeout)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                problem = f"cannot reach {url}: {_reason(exc)}; is the server running?"
            except requests.Timeout as exc:
                raise BackendError(f"{url} did not answer within {self.config.timeout_s:.0f} s ({exc})") from exc
            else:
                if response.ok:
                    return _json(response, url)
                problem = f"{url} answered {response.status_code}: {_server_message(response)}"
                if response.status_code not in _RETRY_STATUS:
                    raise EndpointRefused(problem, response.status_code)
                wait = _retry_after(response, wait)
            if attempt < self.config.max_retries:
                time.sleep(wait)
        raise BackendError(f"{problem} (after {self.config.max_retries} retries)")


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


def _fingerprint(base_url: str, model: str, listing: dict[str, Any] | None) -> str:
    # Only the stable fields of the listing: vLLM, for one, reports "created" as the time of the request.
    stable = {k: v for k, v in (listing or {}).items() if k in ("id", "root", "parent", "owned_by", "max_model_len")}
    payload = {"base_url": base_url, "model": model, "listing": stable}
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


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    return min(float(value), 30.0) if value.replace(".", "", 1).isdigit() else default


def _reason(exc: Exception) -> str:
    """The useful part of a requests error ("[Errno 111] Connection refused"), not its 300-character repr."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if match:
        return match.group(0).strip()
    if "timed out" in text.lower():
        return "connection timed out"
    return type(exc).__name__
