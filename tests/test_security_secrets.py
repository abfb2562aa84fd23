"""Secrets (a database password, an API key) never appear in output, logs, stored rows or reports.

Commands run in-process against a PostgreSQL store whose URL carries a password, and an OpenAI-compatible
endpoint reached with an API key, down the success paths and the failure paths (bad store, unreachable store,
refused key, a server that echoes the key back, nothing listening). Everything they print or log, every file
they write, and every text column of every table is searched for the two secrets.
"""

from __future__ import annotations

import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, select

from evaltune.cli import cli
from evaltune.errors import UserError
from tests.fixtures.answer_server import send_json

PASSWORD = "pw-Zq7-S3CR3T-db"
API_KEY = "sk-evaltune-S3CR3T-4b2a"
SECRETS = (PASSWORD, API_KEY)

pytestmark = pytest.mark.postgres


class _FakeOpenAI(BaseHTTPRequestHandler):
    """``/ok/v1``: a working server; ``/deny/v1``: 401; ``/echo/v1``: a broken proxy that answers 400 with the
    request's Authorization header in its error message. Every Authorization header received is kept."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)

    def _route(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append(auth)
        if self.path.startswith("/deny/"):
            self._answer(401, {"error": {"message": f"invalid key {auth}"}})
        elif self.path.startswith("/echo/"):
            self._answer(400, {"error": {"message": f"bad request with headers Authorization: {auth}"}})
        elif self.path.endswith("/models"):
            self._answer(200, {"data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._answer(200, {"choices": [{"message": {"content": "I don't know."}, "text": "I don't know.",
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

    do_GET = _route
    do_POST = _route


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    _FakeOpenAI.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


class Transcript:
    """Runs commands in-process and keeps everything they printed, raised and logged."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.outputs: list[str] = []

    def run(self, args: list[str], env: dict[str, str], expect: int | None = 0) -> str:
        """Run ``evaltune ARGS`` as ``evaltune.cli.main`` would: a user error is one line and exit code 2."""
        result = CliRunner().invoke(cli, args, env=env, standalone_mode=False)
        text, code, error = result.output, result.exit_code, result.exception
        if isinstance(error, UserError):
            text, code = text + f"error: {error}\n", 2
        elif isinstance(error, click.ClickException):
            text, code = text + error.format_message(), 2
        elif error is not None and not isinstance(error, SystemExit):
            text += "".join(traceback.format_exception(error))  # what the terminal would show
        self.outputs.append(f"$ evaltune {' '.join(args)}  (exit {code})\n{text}")
        if expect is not None:
            assert code == expect, self.outputs[-1]
        return text

    def everything(self) -> str:
        return "\n".join(self.outputs) + "\n" + self.caplog.text


def _stored_text(url: str) -> str:
    """Every value of every row of every table, as text."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(repr(tuple(row)) for table in meta.sorted_tables
                             for row in conn.execute(select(table)))
    finally:
        engine.dispose()


def _files_text(*folders: Path) -> dict[str, str]:
    return {str(p): p.read_text(encoding="utf-8", errors="replace")
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_size < 5 << 20}


def _assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret[:6]}... found in {where}: ...{_around(text, secret)}..."


def _around(text: str, secret: str) -> str:
    at = text.index(secret)
    return text[max(0, at - 150):at + len(secret) + 50]


@pytest.fixture
def transcript(caplog: pytest.LogCaptureFixture) -> Transcript:
    caplog.set_level(logging.INFO)
    return Transcript(caplog)


def test_secrets_stay_out_of_output_logs_rows_and_reports(
    postgres_url: str, endpoint: str, tmp_path: Path, _private_home: Path, transcript: Transcript,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_url = postgres_url.replace("://postgres@", f"://postgres:{PASSWORD}@")
    assert PASSWORD in store_url
    base = {"EVALTUNE_DB_URL": store_url, "EVALTUNE_OPENAI_API_KEY": API_KEY, "EVALTUNE_RECONNECT_S": "0"}
    monkeypatch.chdir(tmp_path)
    run = ["run", "smoke", "--model", f"openai:{endpoint}/ok/v1", "--model-name", "fake-model", "--limit", "3"]
    t = transcript

    # Success paths: migrate, two runs, listings, reports in every format, a gate with JUnit and a summary.
    t.run(["db", "upgrade"], base)
    t.run(run, base)
    # Sampled, so that the second run asks the endpoint again (greedily, any seed would be the first run).
    t.run([*run, "--seed", "1", "--temperature", "0.7"],
          {**base, "EVALTUNE_OPENAI_API_KEY": "", "OPENAI_API_KEY": API_KEY})
    assert f"Bearer {API_KEY}" in _FakeOpenAI.seen  # the key was really sent, from either variable
    for args in (["runs", "list"], ["runs", "show", "1", "--json"], ["models", "list"]):
        t.run(args, base)
    (tmp_path / "gates.yaml").write_text("gates:\n  exact_match: {min: 0.0}\n", encoding="utf-8")
    for fmt in ("html", "md", "json"):
        t.run(["report", "1", "2", "--format", fmt, "-o", f"report.{fmt}"], base)
    t.run(["gate", "1", "2", "--gate", "gates.yaml", "--junit", "gates.xml", "--summary", "summary.md"], base)
    t.run([*run[:-2], "--limit", "2", "--baseline", "1", "--gate", "gates.yaml"], base)

    # The endpoint fails: the key is refused, echoed back by a broken proxy, or nothing listens.
    for where in ("deny/v1", "echo/v1"):
        shown = t.run(["run", "smoke", "--model", f"openai:{endpoint}/{where}", "--model-name", "m", "--limit", "1"],
                      base, expect=2)
    assert "Authorization: Bearer ***" in shown  # the proxy echoed the key; the message hides it
    t.run(["run", "smoke", "--model", f"openai:http://127.0.0.1:{_closed_port()}/v1", "--model-name", "m",
           "--limit", "1"], base, expect=2)

    # A retune job that fails: its log and error are stored, the worker prints them (and exits 1).
    _failing_job(store_url)
    t.run(["worker", "--once"], base, expect=1)

    # The store fails: nothing listening, a user the server does not know, a password in the query string.
    port = _closed_port()
    bad_urls = [store_url.replace(store_url.split("@")[1].split("/")[0], f"127.0.0.1:{port}"),
                store_url.replace("://postgres:", "://nobody:"),
                f"postgresql+psycopg://postgres@127.0.0.1:{port}/db?password={PASSWORD}"]
    for bad in bad_urls:
        env = {**base, "EVALTUNE_DB_URL": bad}
        for args in (run, ["report", "1", "2"], ["gate", "1", "2", "--gate", "gates.yaml"], ["db", "upgrade"],
                     ["runs", "list"], ["worker", "--once"], ["ui", "--port", str(_closed_port())]):
            t.run(args, env, expect=None)

    _assert_no_secret("command output and logs", t.everything())
    for path, text in _files_text(tmp_path, _private_home).items():
        _assert_no_secret(path, text)
    stored = _stored_text(store_url)
    assert "I don't know." in stored and "exact_match" in stored  # the scan saw the runs
    _assert_no_secret("the store's rows", stored)


def _failing_job(url: str) -> None:
    """A queued retune job that fails at once (its base model is an adapter), with its log written."""
    from evaltune.db import open_store
    from evaltune.db.evaluation import ModelVersion
    from evaltune.db.training import PreferenceDataset
    from evaltune.retune import jobs
    from evaltune.retune.config import SftConfig

    store = open_store(url)
    try:
        with store.session_scope() as s:
            adapter = ModelVersion(name="an adapter", backend="hf", location="/nowhere", fingerprint="adapter-fp",
                                   adapter_path="/nowhere/adapter")
            dataset = PreferenceDataset(name="d", strategy="sft", counts={"train": 0})
            s.add_all([adapter, dataset])
            s.flush()
            jobs.enqueue(s, dataset_id=dataset.id, base_model_id=adapter.id, config=SftConfig())
    finally:
        store.close()


def test_a_key_written_into_the_endpoint_url_stays_out_of_the_store(endpoint: str, tmp_path: Path,
                                                                   transcript: Transcript) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with_key = endpoint.replace("http://", f"http://user:{API_KEY}@")
    env = {"EVALTUNE_DB_URL": store_url, "EVALTUNE_OPENAI_API_KEY": ""}
    refused = transcript.run(["run", "smoke", "--model", f"openai:{with_key}/ok/v1", "--model-name", "fake-model",
                              "--limit", "1"], env, expect=2)
    assert "EVALTUNE_OPENAI_API_KEY" in refused  # refused, and told where the key belongs
    listed = transcript.run(["models", "list"], env)
    # The transcript's own "$ evaltune ..." lines hold the key the user typed; what evaltune printed must not.
    _assert_no_secret("command output", refused + listed)
    _assert_no_secret("the store's rows", _stored_text(store_url))
