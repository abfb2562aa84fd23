"""The endpoints behind one ``openai:`` model: what each serves, which one takes the next request, and how a
failing one is retried and then left alone for a while.

Retries on one endpoint are urllib3's ``Retry`` mounted on the requests session (connection errors, 429 and 5xx;
``Retry-After`` in seconds or as an HTTP date honoured up to a cap; otherwise exponential backoff with jitter).
When an endpoint still fails after them it cools down (no requests for ``cooldown_s``) and the request goes to
another; a request fails only when every endpoint has failed it or is cooling down.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import requests
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import InvalidHeader, ReadTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from evaltune.harness.backends.base import BackendError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# Only these fields of a /models entry describe the weights; vLLM, for one, reports "created" as the request's time.
STABLE_LISTING = ("id", "root", "parent", "owned_by", "max_model_len")


class _Retry(Retry):
    """urllib3's policy, except that a read timeout is not retried on the same endpoint (the server already took
    the whole timeout, so the request is better sent to another endpoint, or fails, than asked there again), and
    a Retry-After that is neither seconds nor a date means the usual backoff instead of a failed request."""

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None, _stacktrace: TracebackType | None = None) -> Self:
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None


def retrying_session(concurrency: int, endpoints: int, max_retries: int, backoff_s: float, jitter_s: float,
                     max_retry_after_s: int) -> requests.Session:
    """A session whose connection pool holds ``concurrency`` connections per endpoint and whose every request
    is retried ``max_retries`` times on connection errors, 429 and 5xx: after ``Retry-After`` (at most
    ``max_retry_after_s``) when the server sends one, else at once and then after ``backoff_s`` × 2^(n-2) plus up
    to ``jitter_s`` at random (urllib3's backoff), so that many clients do not retry in step."""
    retry = _Retry(
        total=max_retries,
        backoff_factor=backoff_s / 2,  # urllib3 waits factor × 2^(n-1) before retry n ≥ 2: backoff_s before the 2nd
        backoff_jitter=jitter_s,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # POST too: a generation request has no side effect worth protecting
        respect_retry_after_header=True,
        retry_after_max=max_retry_after_s,
        raise_on_status=False,  # the last answer comes back, so its message can be shown
    )
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=endpoints, pool_maxsize=concurrency, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class Endpoint:
    """One base URL and what this client knows of it now."""

    url: str
    in_flight: int = 0
    sent: int = 0
    down_until: float = 0.0  # time.monotonic() until which it gets no requests
    last_error: str = ""


class Endpoints:
    """The base URLs that serve one model, shared by every request thread of a backend."""

    def __init__(self, urls: Sequence[str], cooldown_s: float):
        self._all = [Endpoint(url) for url in urls]
        self._cooldown_s = cooldown_s
        self._lock = threading.Lock()

    def take(self, tried: Collection[str]) -> Endpoint | None:
        """The endpoint with the fewest requests in flight (then the fewest sent) among those this request has not
        tried and that are not cooling down, counted as one more in flight; None when no endpoint is left."""
        now = time.monotonic()
        with self._lock:
            ready = [e for e in self._all if e.url not in tried and e.down_until <= now]
            if not ready:
                return None
            chosen = min(ready, key=lambda e: (e.in_flight, e.sent))
            chosen.in_flight += 1
            chosen.sent += 1
            return chosen

    def done(self, endpoint: Endpoint, problem: str | None = None) -> None:
        """One request to ``endpoint`` is over; with a ``problem``, the endpoint cools down."""
        with self._lock:
            endpoint.in_flight -= 1
            if problem is not None:
                self._cool_down(endpoint, problem)

    def set_down(self, url: str, problem: str) -> None:
        """``url`` did not answer at start: it cools down as if a request had failed there."""
        with self._lock:
            self._cool_down(next(e for e in self._all if e.url == url), problem)

    def failure(self) -> str:
        """Why a request found no endpoint: the one endpoint's last error, or every endpoint's."""
        if len(self._all) == 1:
            return self._all[0].last_error
        return f"all {len(self._all)} endpoints failed: " + "; ".join(e.last_error for e in self._all)

    def sent(self) -> dict[str, int]:
        """Requests sent to each endpoint so far (retries on one endpoint count once)."""
        with self._lock:
            return {e.url: e.sent for e in self._all}

    def _cool_down(self, endpoint: Endpoint, problem: str) -> None:
        endpoint.last_error = problem
        endpoint.down_until = time.monotonic() + self._cooldown_s


@dataclass(frozen=True)
class Probe:
    """What GET /models said at start: ``served`` the model ids listed (empty when the server lists none or cannot),
    ``listing`` the stable fields of our model's entry, ``problem`` why the endpoint did not answer."""

    url: str
    served: tuple[str, ...] = ()
    listing: Mapping[str, Any] | None = None
    problem: str | None = None


def probe(url: str, model: str, headers: Mapping[str, str], connect_timeout_s: float) -> Probe:
    """Ask ``url``/models once, without retries, so that nothing listening fails fast. Raises BackendError on 401
    (the key is wrong for every endpoint alike)."""
    try:
        response = requests.get(url + "/models", headers=dict(headers), timeout=(connect_timeout_s, 30))
    except requests.RequestException as exc:
        return Probe(url, problem=f"cannot reach {url}: {reason(exc)}; is the server running?")
    if response.status_code == 401:
        raise BackendError(f"{url} refused the API key (401); set EVALTUNE_OPENAI_API_KEY")
    try:
        entries = response.json().get("data", []) if response.ok else []
    except (ValueError, AttributeError):
        entries = []
    entries = [e for e in entries if isinstance(e, dict)]
    ours = next((e for e in entries if e.get("id") == model), None)
    listing = {k: v for k, v in ours.items() if k in STABLE_LISTING} if ours is not None else None
    return Probe(url, tuple(str(e.get("id")) for e in entries), listing)


def check_probes(probes: Sequence[Probe], model: str) -> Mapping[str, Any] | None:
    """The stable listing of ``model`` (None when no endpoint lists it), after checking that some endpoint answers
    and, with several, that none lists other models without ``model`` or describes it differently. Raises
    BackendError naming each endpoint at fault."""
    answered = [p for p in probes if p.problem is None]
    if not answered:
        if len(probes) == 1:
            raise BackendError(str(probes[0].problem))
        raise BackendError(f"none of the {len(probes)} endpoints answers: " + "; ".join(str(p.problem) for p in probes))
    listings = {p.url: p.listing for p in answered if p.listing is not None}
    if len(probes) > 1:
        for p in answered:
            if p.served and model not in p.served:
                raise BackendError(
                    f"{p.url} serves {', '.join(p.served[:5])}, not '{model}': every endpoint of one --model must "
                    "serve the same model; fix --model-name or leave that endpoint out"
                )
        if len({json.dumps(listing, sort_keys=True, default=str) for listing in listings.values()}) > 1:
            described = "; ".join(f"{url}: {json.dumps(listing, default=str)}" for url, listing in listings.items())
            raise BackendError(f"the endpoints serve different models under the name '{model}' ({described}); "
                               "point --model at endpoints that serve the same weights")
    return next(iter(listings.values()), None)


def reason(exc: Exception) -> str:
    """The useful part of a requests error ("[Errno 111] Connection refused"), not its 300-character repr."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\][^'\")]*|Connection reset by peer|Remote end closed connection without "
                      r"response", text)
    if match:
        return match.group(0).strip()
    if "timed out" in text.lower():
        return "connection timed out"
    return type(exc).__name__
