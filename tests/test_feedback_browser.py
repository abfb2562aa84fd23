"""End to end: the real app (``evaltune ui``) in headless Debian Chromium, driven by Playwright.

Log in, rate one blind A/B pair and two single outputs (one of them hostile HTML), watch the progress
change, then find the three ratings in the database. Skipped where Chromium or Playwright is missing,
except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evaltune.db import open_store
from evaltune.db.ratings import Rating
from evaltune.feedback_ui.campaigns import create_campaign
from tests.fixtures.feedback_seed import HOSTILE, PASSWORD, Seeded, seed_store

CHROMIUM = os.environ.get("EVALTUNE_CHROMIUM", "/usr/bin/chromium")
# As root in a container, with no network: no sandbox, no GPU, and no background calls home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
WAIT_MS = 60_000  # Streamlit reruns are slow on a busy 2-core machine
# Streamlit marks its root element while a script run is in progress; old widgets stay on screen until it ends.
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser test (apt install chromium; pip install playwright)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_api() -> Any:
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as api:
        yield api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited early with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the app did not answer at {url} within {timeout_s} s")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, str, Seeded]]:
    """``evaltune ui`` on a free port over a seeded SQLite store; yields (base URL, store URL, seed)."""
    db_url = f"sqlite:///{tmp_path / 'e2e.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=4, outputs=[HOSTILE], users={"ann": "annotator"})
    with store.session_scope() as s:
        create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=1, guidelines="Be *strict*.")
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, overlap=1, pairwise=True)
    store.close()
    port = _free_port()
    env = {**os.environ, "EVALTUNE_DB_URL": db_url, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "evaltune", "ui", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", db_url, seeded
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the streamlit child it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _choose(page: Any, option: str) -> None:
    """Pick ``option`` in the first select box; a rerun finishing under the click can close the list, so retry."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(10):
        page.get_by_test_id("stSelectbox").first.click()
        try:
            page.get_by_role("option", name=option).click(timeout=3000)
            return
        except PlaywrightTimeout:  # the list closed or never opened
            page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r}")


def _settled(page: Any, expect: Any, text: str) -> None:
    """Wait until ``text`` is shown and the script run that drew it has finished (no stale widgets left)."""
    expect(page.get_by_text(text, exact=False)).to_be_visible(timeout=WAIT_MS)
    page.wait_for_selector(IDLE, timeout=WAIT_MS)


def _rate_single(page: Any, expect: Any, rated_before: int) -> None:
    page.get_by_text("4 good", exact=True).click()
    page.get_by_text("no", exact=True).click()
    page.get_by_role("button", name="Submit rating").click()
    _settled(page, expect, f"Rated by you: {rated_before + 1}")


def test_log_in_rate_three_items_and_find_them_stored(playwright_api: Any, app: tuple[str, str, Seeded],
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base_url, db_url, seeded = app
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base_url, wait_until="domcontentloaded")
        page.get_by_label("Name", exact=True).fill("ann")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        # The newest campaign comes first: the blind A/B one.
        _settled(page, expect, "Rated by you: 0")
        expect(page.get_by_text("Output A", exact=True)).to_be_visible()
        assert "model-1" not in page.content() and "model-2" not in page.content()
        page.get_by_text("B is better", exact=True).click()
        page.get_by_role("button", name="Submit rating").click()
        _settled(page, expect, "Rated by you: 1")
        _choose(page, "single (#1)")
        _settled(page, expect, "Model output")
        # The first single item is the hostile output: shown as text, never run or rendered.
        expect(page.get_by_text("<script>window.__pwned=1</script>", exact=False)).to_be_visible()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src='x']").count() == 0 and page.locator("a[href^='javascript']").count() == 0
        _rate_single(page, expect, 0)
        _rate_single(page, expect, 1)
        page.screenshot(path=str(tmp_path / "after.png"))
        assert page.evaluate("window.__pwned") is None
    finally:
        browser.close()
    store = open_store(db_url)
    with store.session_scope() as s:
        ratings = s.execute(select(Rating).order_by(Rating.id)).scalars().all()
        assert [r.user_id for r in ratings] == [seeded.users["ann"].id] * 3
        assert (ratings[0].choice, ratings[0].likert) == ("b", None)
        assert {ratings[0].side_a_generation_id, ratings[0].side_b_generation_id} == {
            seeded.generation_ids[seeded.run_ids[0]][0], seeded.generation_ids[seeded.run_ids[1]][0]}
        assert [(r.likert, r.hallucination, r.choice) for r in ratings[1:]] == [(4, False, None)] * 2
        assert ratings[1].generation_id == seeded.generation_ids[seeded.run_ids[0]][0]  # the hostile one
    store.close()
