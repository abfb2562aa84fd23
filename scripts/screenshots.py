"""Screenshots of every page of the rating app at scale, and how long each takes to load. Not a test.

    python scripts/screenshots.py [--out DIR]

Seeds a fresh SQLite store with 100,000 generations and 50,000 ratings (``seed_large.py``), starts
``evaltune ui`` on a free port, drives Debian's Chromium with Playwright at 1280x800, and writes one PNG per
page plus ``timings.json``: the seconds from a click until Streamlit reports the page's script finished,
and the seconds each page's main queries take on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seed_large import seed  # type: ignore[import-not-found]  # run from scripts/: python scripts/screenshots.py

from evaltune.db import open_store
from evaltune.feedback_ui import agreement_data, progress, runs_data
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.queue import claim_next

CHROMIUM = os.environ.get("EVALTUNE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PASSWORD = "screenshots-only"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
PAGES = [("progress", "Progress"), ("agreement", "Agreement"), ("runs", "Runs"), ("adjudicate", "Adjudicate"),
         ("campaigns", "Campaigns"), ("users", "Users"), ("rate", "Rate")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return round(time.perf_counter() - started, 3)


def query_timings(db_url: str, info: dict[str, Any]) -> dict[str, float]:
    """Seconds for each page's main queries, run directly against the store."""
    store = open_store(db_url)
    single, pair = info["campaigns"]
    run = info["runs"][0]
    flt = runs_data.OutputFilter(score_rules=["abstention==0"])
    with store.sessions() as s:
        timings = {
            "runs list (runs_table)": _timed(lambda: runs_data.runs_table(s)),
            "run outputs count, filtered": _timed(lambda: runs_data.count_outputs(s, run, flt)),
            "run outputs page 400 of 1000": _timed(lambda: runs_data.outputs_page(s, run, flt, 400)),
            "campaign progress": _timed(lambda: progress.campaign_progress(s)),
            "annotator progress": _timed(lambda: progress.annotator_progress(s, single)),
            "alpha, 4 questions (30k ratings)": _timed(lambda: agreement_data.campaign_agreement(s, single, False)),
            "alpha, A/B (20k ratings)": _timed(lambda: agreement_data.campaign_agreement(s, pair, True)),
            "kappa per pair, likert": _timed(lambda: agreement_data.pair_kappas(s, single, "likert")),
            "most disagreed, likert": _timed(lambda: agreement_data.most_disagreed(s, single, "likert", "ordinal")),
        }
    annotator = Account(info["users"]["ann00"], "ann00", "annotator")
    with store.session_scope() as s:
        timings["claim next item (15k full items ahead)"] = _timed(lambda: claim_next(s, annotator, single))
    store.close()
    return timings


def _wait_ready(page: Any, title: str) -> None:
    page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    page.wait_for_selector(IDLE, timeout=120_000)


def _shot(page: Any, path: Path) -> None:
    page.wait_for_timeout(1000)  # the script has finished; let the browser finish drawing widgets
    page.screenshot(path=str(path))


def _log_in(page: Any, url: str, name: str) -> float:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    started = time.perf_counter()
    page.get_by_role("button", name="Log in").click()
    _wait_ready(page, "Rate" if name != "viewer" else "Progress")
    return round(time.perf_counter() - started, 3)


def _open(page: Any, title: str) -> float:
    started = time.perf_counter()
    page.get_by_test_id("stSidebar").get_by_text(title, exact=True).click()
    _wait_ready(page, title)
    return round(time.perf_counter() - started, 3)


def browse(url: str, out: Path) -> dict[str, float]:
    """Screenshot every page as admin, the rate page as an annotator; returns seconds per page load."""
    from playwright.sync_api import sync_playwright

    timings: dict[str, float] = {}
    with sync_playwright() as api:
        browser = api.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("button", name="Log in").wait_for(timeout=120_000)
        page.get_by_label("Name", exact=True).wait_for(timeout=120_000)
        _shot(page, out / "01-login.png")
        timings["log in (admin) -> Rate"] = _log_in(page, url, "admin")
        for number, (slug, title) in enumerate(PAGES, start=2):
            timings[title] = _open(page, title)
            _shot(page, out / f"{number:02d}-{slug}.png")
        for _slug, title in PAGES:  # a second visit: no first-render costs in the browser
            timings[f"{title} (again)"] = _open(page, title)
        _open(page, "Runs")
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option").last.click()  # the oldest run: run 1, whose first output is hostile HTML
        page.wait_for_selector('input[aria-label="Drill into"][value^="run 1:"]', timeout=120_000)
        page.wait_for_timeout(1000)
        page.wait_for_selector(IDLE, timeout=120_000)
        page.get_by_test_id("stExpander").first.get_by_text("item-00000", exact=False).click()
        page.get_by_text("<script>", exact=False).first.wait_for(timeout=120_000)
        page.get_by_test_id("stExpander").first.scroll_into_view_if_needed()
        _shot(page, out / "09-runs-output-hostile.png")
        annotator = browser.new_page(viewport={"width": 1280, "height": 800})
        timings["log in (annotator) -> Rate, A/B"] = _log_in(annotator, url, "ann00")
        _shot(annotator, out / "10-rate-ab.png")
        annotator.get_by_test_id("stSelectbox").first.click()
        started = time.perf_counter()
        annotator.get_by_role("option", name="release 1.4 spot check (#1)").click()
        annotator.get_by_text("Model output", exact=True).wait_for(timeout=120_000)
        annotator.wait_for_selector(IDLE, timeout=120_000)
        timings["Rate, single output (switch campaign)"] = round(time.perf_counter() - started, 3)
        _shot(annotator, out / "11-rate-single.png")
        browser.close()
    return timings


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EVALTUNE_DB_URL": db_url, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    server = subprocess.Popen([sys.executable, "-m", "evaltune", "ui", "--port", str(port)], env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("the app did not start; see " + str(log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "evaltune-screens")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{out / 'large.db'}"
    (out / "large.db").unlink(missing_ok=True)
    started = time.perf_counter()
    info = seed(open_store(db_url))
    report: dict[str, Any] = {"seed_s": round(time.perf_counter() - started, 1), "generations": info["generations"],
                              "ratings": info["ratings"], "queries_s": query_timings(db_url, info)}
    port = _free_port()
    server = _serve(db_url, port, out / "server.log")
    try:
        report["page_load_s"] = browse(f"http://127.0.0.1:{port}", out)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    (out / "timings.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
