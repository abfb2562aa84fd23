"""Annotators rating through the real server: two headless Chromium sessions against ``evaltune ui`` for 20 s, on
SQLite and on PostgreSQL, lose nothing and double nothing (the longer runs: ``bench/load_browser.py``); and the
Streamlit settings ``evaltune ui`` runs the server with.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load_browser import BrowserLoad, main, run_browser_load
from bench.loadkit import table
from evaltune.feedback_ui import server_config
from tests.conftest import invoke_main
from tests.fixtures.browser import CHROMIUM, unavailable

SESSIONS, SECONDS = 2, 20.0
THINK = (0.0, 0.1)  # a short random reading time before each rating: the --think path, at little cost in ratings
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
    load = BrowserLoad(sessions=SESSIONS, seconds=SECONDS, backend=backend, nice=5, think=THINK)
    result = run_browser_load(store_url, load, tmp_path)
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
    environments: list[dict[str, str]] = []

    def record(path: str, command: list[str], env: dict[str, str]) -> None:  # instead of becoming Streamlit
        started.append(command)
        environments.append(env)

    monkeypatch.setattr("os.execve", record)
    monkeypatch.delenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    code, out, _err = invoke_main(["ui", "--port", "8599"], monkeypatch, capsys)
    assert code == 0 and "rating app on http://127.0.0.1:8599" in out
    command = started[0]
    assert command[command.index("--server.fileWatcherType") + 1] == "none"
    assert environments[0]["MALLOC_ARENA_MAX"] == str(server_config.MALLOC_ARENAS)  # read by glibc at start
    # The operator's own settings win: no flag overrides their Streamlit variable, nor evaltune their arenas.
    monkeypatch.setenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "poll")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert invoke_main(["ui", "--port", "8599"], monkeypatch, capsys)[0] == 0
    assert "--server.fileWatcherType" not in started[1]
    assert environments[1]["MALLOC_ARENA_MAX"] == "8"


def test_the_environment_names_are_streamlits_own() -> None:
    from streamlit import config

    options = config.get_config_options()
    for option in [*server_config.SERVER_SETTINGS, "runner.postScriptGC", "client.showErrorDetails"]:
        assert server_config.env_name(option) == options[option].env_var


def test_the_heap_is_left_alone_outside_a_streamlit_server() -> None:
    assert server_config.freeze_imported_objects() is False  # a test process or the command line: no runtime


# Eight threads each holding memory they allocated at the same moment, as the server's script-run threads do; then
# how many malloc arenas glibc made.
_THREADS_ALLOCATING = """
import sys, threading
from bench.server_memory import _arenas, _libc
from evaltune.feedback_ui import server_config
print(server_config.limit_malloc_arenas())
barrier, kept = threading.Barrier(8), []
def allocate():
    blocks = [bytearray(4096) for _ in range(200)]
    barrier.wait()
    kept.append(blocks)
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(_arenas(_libc()))
"""


def _arenas_after_threads(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", _THREADS_ALLOCATING], env={**clean, **env}, capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    limited, arenas = done.stdout.split()
    return limited, int(arenas)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_the_server_keeps_to_two_malloc_arenas_unless_the_operator_set_their_own() -> None:
    # One arena per thread is what grew the server's memory with every rating (script runs are new threads).
    assert _arenas_after_threads() == ("True", server_config.MALLOC_ARENAS)
    limited, arenas = _arenas_after_threads(MALLOC_ARENA_MAX="16")
    assert limited == "False" and arenas > server_config.MALLOC_ARENAS


@pytest.mark.parametrize("think", ["3-1", "-1", "two", "1-x"])
def test_the_bench_refuses_a_reading_time_it_cannot_use(think: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--think", think])
    assert exited.value.code == 2 and "--think" in capsys.readouterr().err


def test_a_reading_time_is_fixed_or_drawn_between_its_bounds() -> None:
    assert BrowserLoad(think=(2.0, 2.0)).think_s() == 2.0
    assert all(1.0 <= BrowserLoad(think=(1.0, 3.0)).think_s() <= 3.0 for _ in range(50))
    assert BrowserLoad().think_s() == 0.0
