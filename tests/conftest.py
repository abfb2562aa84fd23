"""Shared test set-up: offline hubs, one torch thread, a private EVALTUNE_HOME, shared benchmark data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evaltune.cli import main
from evaltune.db.engine import Store, open_store

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EVALTUNE_THREADS", "1")

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.tiny_model", "tests.fixtures.served_model"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = PROJECT_ROOT.parent / "shared" / "benchdata"


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own EVALTUNE_HOME so that nothing leaks between tests or into ~/.evaltune."""
    home = tmp_path_factory.mktemp("evaltune_home")
    monkeypatch.setenv("EVALTUNE_HOME", str(home))
    monkeypatch.delenv("EVALTUNE_DB_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def benchdata() -> Path:
    """../shared/benchdata beside the project; tests that need it skip where it is absent (a user's clone)."""
    if not BENCHDATA.is_dir():
        pytest.skip(f"public benchmark data not found at {BENCHDATA} (it sits beside the project in CI)")
    return BENCHDATA


@pytest.fixture
def store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An empty, migrated store at ``store_url`` (SQLite and PostgreSQL; a test module that needs only SQLite
    overrides ``store_url``). ``EVALTUNE_DB_URL`` points at it, so the app and the command line use it too."""
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    opened = open_store(store_url)
    yield opened
    opened.close()


def invoke_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                ) -> tuple[int, str, str]:
    """``evaltune ARGS`` in-process through ``main()``, which maps errors to exit codes as a user sees them:
    (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["evaltune", *args])
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


Cli = Callable[..., tuple[int, str, str]]  # cli("runs", "show", "1") -> (exit code, stdout, stderr)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``evaltune ARGS`` in-process, as ``invoke_main`` runs it: ``cli("run", "smoke")`` -> (code, stdout, stderr)."""
    def call(*args: str) -> tuple[int, str, str]:
        return invoke_main(list(args), monkeypatch, capsys)
    return call
