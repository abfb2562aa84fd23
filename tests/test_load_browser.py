"""Annotators rating through the real server: two headless Chromium sessions against ``evaltune ui`` for 20 s, on
SQLite and on PostgreSQL, lose nothing and double nothing (the longer runs: ``bench/load_browser.py``); and the
Streamlit settings ``evaltune ui`` runs the server with.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.load_browser import BrowserLoad, run_browser_load
from bench.loadkit import table
from evaltune.feedback_ui import server_config
from tests.conftest import invoke_main
from tests.fixtures.browser import CHROMIUM, unavailable

SESSIONS, SECONDS = 2, 20.0
# Before the heap was frozen a rating cost the server 0.2-0.3 CPU-seconds (most of it Streamlit's full collection
# after each script run); now about 0.03. The bound is loose because other work shares this machine's cores.
CPU_SECONDS_PER_RATING_BOUND = 0.15


def _browsers_available() -> None:
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (Debian: apt install chromium)")
    if importlib.util.find_spec("playwright") is None:
        unavailable("Playwright is not installed (pip install playwright; no browser download needed)")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_browsers_rate_through_the_server_and_every_acknowledged_rating_is_stored(
    store_url: str, tmp_path: Path
) -> None:
    _browsers_available()
    backend = "postgres" if store_url.startswith("postgresql") else "sqlite"
    result = run_browser_load(store_url, BrowserLoad(sessions=SESSIONS, seconds=SECONDS, backend=backend), tmp_path)
    print(f"\n{table([result.row()])}")
    assert result.problems() == []  # each annotator's acknowledged = stored, no duplicate, counters right, no error
    assert result.acknowledged == result.audit.stored > 0
    assert all(tally.acknowledged > 0 for tally in result.tallies)  # both sessions got through, not just one
    assert result.seconds >= SECONDS and len(result.latencies()) == result.acknowledged
    assert result.cpu_per_rating() < CPU_SECONDS_PER_RATING_BOUND


def test_evaltune_ui_starts_streamlit_with_the_server_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[list[str]] = []

    def record(path: str, command: list[str]) -> None:  # instead of replacing the test process with Streamlit
        started.append(command)

    monkeypatch.setattr("os.execv", record)
    monkeypatch.delenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", raising=False)
    code, out, _err = invoke_main(["ui", "--port", "8599"], monkeypatch, capsys)
    assert code == 0 and "rating app on http://127.0.0.1:8599" in out
    command = started[0]
    assert command[command.index("--server.fileWatcherType") + 1] == "none"
    # The operator's own Streamlit variable wins: no flag overrides it.
    monkeypatch.setenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "poll")
    assert invoke_main(["ui", "--port", "8599"], monkeypatch, capsys)[0] == 0
    assert "--server.fileWatcherType" not in started[1]


def test_the_environment_names_are_streamlits_own() -> None:
    from streamlit import config

    options = config.get_config_options()
    for option in [*server_config.SERVER_SETTINGS, "runner.postScriptGC", "client.showErrorDetails"]:
        assert server_config.env_name(option) == options[option].env_var


def test_the_heap_is_left_alone_outside_a_streamlit_server() -> None:
    assert server_config.freeze_imported_objects() is False  # a test process or the command line: no runtime
