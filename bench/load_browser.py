"""Annotators rating through the real server: N headless browser sessions against ``evaltune ui``.

    python bench/load_browser.py [--sessions 4] [--seconds 60] [--backend sqlite|postgres] [--nice 10]
                                 [--think 0 | --think 1-3] [--gc on|off] [--overlap 3] [--samples]
                                 [--trace-memory PROBE.log] [--postgres postgresql+psycopg://USER@HOST:PORT]

One Debian Chromium with one browser context per annotator (its own cookies and Streamlit session), driven by
Playwright's async API from this process, against ``evaltune ui`` started on a free port over a fresh store.
Each session logs in, opens the Rate page on the campaign seeded for the run, and then, with no reading time
(or ``--think``'s: a fixed number of seconds, or a random one between two, before each rating), rates each
item "4 good" with no unsupported claims (one click on the rating form's score; on Streamlit's own radio form:
"4 good", "no", "Submit rating"), again and again until the time is up. A rating is acknowledged
when the page's counter ("Rated by you: n") moves and the script run that draws the next item has finished;
the time from the click to then is the latency reported.

Afterwards the store is audited (every acknowledged rating stored, nobody rated an item twice, counters equal to
rows), and the server's CPU seconds per rating and its resident memory over the run are reported, read with
psutil from the server's process tree (``evaltune ui`` replaces itself with Streamlit, so that is one process).

``--nice N`` lowers this process's priority after the server has started, and holds every thread of the
Playwright driver and Chromium at niceness N (``renice_browsers``, twice a second: Chromium run as root raises
its own priorities): on a small machine the browsers otherwise starve the server they are measuring.
``--think S`` or ``--think LOW-HIGH`` is the reading time before each rating. With ``--backend postgres`` and no
``--postgres URL``, ``--pg-fsync on`` (the default) starts the throwaway server with durable commits.
``--gc on|off`` sets Streamlit's ``runner.postScriptGC`` (default: what ``evaltune ui`` passes).
``--samples`` prints the server's CPU and resident memory (RSS) over the run, and its RSS at each whole minute.
``--trace-memory PROBE.log`` starts the server through ``bench/server_memory.py`` instead of ``evaltune ui``:
every minute it writes where the server's memory is (Python objects by allocation site, SQLite's heap, the
allocator's free space). Tracing costs CPU: leave it off for CPU and latency figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from sqlalchemy import func, select

from bench.load_ratings import Audit, LoadSettings, audit, seed_campaign
from bench.loadkit import BACKENDS, percentile, store_urls, table, throwaway_postgres
from evaltune.commands.ui_cmd import streamlit_command
from evaltune.db.engine import open_store
from evaltune.db.ratings import CampaignItem, Rating, User
from evaltune.feedback_ui import server_config
from evaltune.feedback_ui.auth import Account
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, WAIT_MS, serve_app, wait_healthy
from tests.fixtures.postgres import _free_port

PASSWORD = "load-test-password"  # the password seed_campaign gives every annotator
# A browser session rates at most a few items a second (one did 5/s on a quiet machine with a one-click form);
# campaigns are sized for twice that, so that nobody runs out.
RATINGS_PER_SESSION_SECOND = 10
MAX_ERRORS_PER_SESSION = 5  # a page that breaks every time would otherwise spin for the whole run
POLL_MS = 25  # how often a page is checked for the next item; the latency's resolution
# The counter the Rate page shows moved to n, and the script run drawing the page has finished.
NEXT_ITEM_SHOWN = """n => document.body.innerText.includes(`Rated by you: ${n} `) &&
    document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]') !== null"""


@dataclass(frozen=True)
class BrowserLoad:
    """One run of the bench: how many browser sessions, for how long, on which store, with which settings."""

    sessions: int = 4
    seconds: float = 60.0
    backend: str = "sqlite"
    nice: int = 0  # added to the browsers' niceness (0: same priority as the server)
    gc: str | None = None  # runner.postScriptGC "on"/"off"; None: what `evaltune ui` passes
    overlap: int = 3
    think: tuple[float, float] = (0.0, 0.0)  # reading time before each rating: uniform between the two, seconds
    trace_memory: Path | None = None  # serve through bench/server_memory.py, probing into this file

    def think_s(self) -> float:
        low, high = self.think
        return random.uniform(low, high) if high > low else low

    def think_label(self) -> str:
        low, high = self.think
        return f"{low:g}-{high:g}" if high > low else f"{low:g}"

    def seed(self) -> LoadSettings:
        items = int(self.seconds * RATINGS_PER_SESSION_SECOND * max(self.sessions / self.overlap, 1))
        return LoadSettings(sessions=self.sessions, seconds=self.seconds, overlap=self.overlap,
                            items=max(100, items))

    def server_env(self) -> dict[str, str]:
        # Streamlit's own variable: evaltune's server settings leave an option alone when it is set.
        return {} if self.gc is None else {"STREAMLIT_RUNNER_POST_SCRIPT_GC": str(self.gc == "on").lower()}


@dataclass
class SessionTally:
    """What one browser session saw: ratings acknowledged to it, submit-to-next-item latencies, errors."""

    annotator: str
    acknowledged: int = 0
    latency_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ran_out: bool = False


@dataclass(frozen=True)
class ServerSample:
    """The server process tree at one moment: seconds since the rating started, CPU seconds used, RSS."""

    at_s: float
    cpu_s: float
    rss_mib: float


@dataclass
class BrowserLoadResult:
    load: BrowserLoad
    tallies: list[SessionTally]
    audit: Audit
    stored_by: dict[str, int]  # annotator name -> ratings stored
    samples: list[ServerSample]
    seconds: float
    load_average: tuple[float, float, float]

    @property
    def acknowledged(self) -> int:
        return sum(t.acknowledged for t in self.tallies)

    def latencies(self) -> list[float]:
        return [s for t in self.tallies for s in t.latency_s]

    def cpu_per_rating(self) -> float:
        used = self.samples[-1].cpu_s - self.samples[0].cpu_s
        return used / self.acknowledged if self.acknowledged else float("nan")

    def problems(self) -> list[str]:
        """Every way the run broke the promise: a rating acknowledged but not stored (or the reverse), a
        duplicate, a counter off, a page error."""
        found = [f"{t.annotator}: {t.acknowledged} acknowledged, {self.stored_by.get(t.annotator, 0)} stored"
                 for t in self.tallies if t.acknowledged != self.stored_by.get(t.annotator, 0)]
        if self.audit.duplicates:
            found.append(f"{self.audit.duplicates} duplicate ratings")
        if self.audit.miscounted_items:
            found.append(f"{self.audit.miscounted_items} items whose counters disagree with their rows")
        errors = [e for t in self.tallies for e in t.errors]
        if errors:
            found.append(f"{len(errors)} page errors, e.g. {errors[0]}")
        if any(t.ran_out for t in self.tallies):
            found.append("a session ran out of items")
        return found

    def row(self) -> dict[str, Any]:
        latencies = self.latencies()
        return {
            "backend": self.load.backend, "N": self.load.sessions, "nice": self.load.nice,
            "gc": self.load.gc or "default", "think s": self.load.think_label(), "seconds": self.seconds,
            "acknowledged": self.acknowledged,
            "stored": self.audit.stored, "duplicates": self.audit.duplicates,
            "ratings/min": 60 * self.acknowledged / self.seconds if self.seconds else 0.0,
            "p50 s": f"{percentile(latencies, 50):.2f}", "p95 s": f"{percentile(latencies, 95):.2f}",
            "CPU-s/rating": f"{self.cpu_per_rating():.3f}",
            "RSS start MiB": self.samples[0].rss_mib, "RSS end MiB": self.samples[-1].rss_mib,
            "load avg": f"{self.load_average[0]:.1f}",
        }

    def rss_by_minute(self) -> list[dict[str, Any]]:
        """The server's RSS at the first sample of each whole minute of rating, and the growth since the start."""
        rows: list[dict[str, Any]] = []
        for s in self.samples:
            minute = int(s.at_s // 60)
            if not rows or minute > rows[-1]["minute"]:
                rows.append({"minute": minute, "at s": s.at_s, "RSS MiB": s.rss_mib,
                             "since start MiB": round(s.rss_mib - self.samples[0].rss_mib, 1)})
        return rows


def server_process(base_url: str) -> psutil.Process:
    """The Streamlit server listening on ``base_url``'s port (``evaltune ui`` exec'd into it)."""
    port = base_url.rsplit(":", 1)[1]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "streamlit" in cmdline and "--server.port" in cmdline and port in cmdline:
            return process
    raise RuntimeError(f"no Streamlit server found listening on port {port}")


def sample(server: psutil.Process, began: float) -> ServerSample:
    """CPU seconds and resident memory of the server and any children it started."""
    tree = [server, *server.children(recursive=True)]
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in tree)
    rss = sum(p.memory_info().rss for p in tree) / 2**20
    return ServerSample(round(time.monotonic() - began, 1), cpu, round(rss, 1))


async def _log_in(page: Any, base_url: str, name: str) -> None:
    from playwright.async_api import expect

    await page.goto(base_url)
    await page.get_by_label("Name").fill(name)
    await page.locator("input[type=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_text("Rated by you: 0 ", exact=False)).to_be_visible(timeout=WAIT_MS)
    await page.wait_for_selector(IDLE, timeout=WAIT_MS)


async def _rate_one(page: Any, tally: SessionTally) -> None:
    """Rate the item on screen "4 good" with no unsupported claims, and wait for the next item; counts it and its
    latency (from the click that sends the rating)."""
    score = page.get_by_role("button", name="4 good", exact=True)
    if await score.count():  # the Rate page's rating form: a click on a score sends the rating at once
        started = time.perf_counter()
        await score.click()
    else:  # Streamlit's own radio buttons in a form
        await page.get_by_text("4 good", exact=True).click()
        await page.get_by_text("no", exact=True).click()
        started = time.perf_counter()
        await page.get_by_role("button", name="Submit rating").click()
    await page.wait_for_function(NEXT_ITEM_SHOWN, arg=tally.acknowledged + 1, polling=POLL_MS, timeout=WAIT_MS)
    tally.latency_s.append(time.perf_counter() - started)
    tally.acknowledged += 1
    if await page.get_by_text("Nothing left for you", exact=False).count():
        tally.ran_out = True


async def annotator(browser: Any, base_url: str, account: Account, start: asyncio.Barrier,
                    deadline: list[float], tally: SessionTally, think: Callable[[], float]) -> None:
    """One annotator in a browser context of its own: log in, wait for the others, rate until the deadline."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        try:
            await _log_in(page, base_url, account.name)
        except Exception as error:  # reported; the others must not wait for this session for ever
            tally.errors.append(f"{account.name}: could not log in: {type(error).__name__}: {str(error)[:300]}")
            await start.wait()
            return
        await start.wait()
        while time.monotonic() < deadline[0] and not tally.ran_out:
            reading = think()
            if reading:  # the annotator reads the item: not part of the latency, which starts at the click
                await asyncio.sleep(min(reading, max(0.0, deadline[0] - time.monotonic())))
                if time.monotonic() >= deadline[0]:
                    break
            try:
                await _rate_one(page, tally)
            except Exception as error:  # recorded and reported; the session goes on
                tally.errors.append(f"{account.name}: {type(error).__name__}: {str(error)[:300]}")
                if len(tally.errors) >= MAX_ERRORS_PER_SESSION:
                    return
                try:
                    await page.reload()
                    await page.wait_for_selector(IDLE, timeout=WAIT_MS)
                except Exception as reload_error:  # the next rating tries again, up to the error limit
                    tally.errors.append(f"{account.name}: reload: {type(reload_error).__name__}")
    finally:
        await context.close()


def renice_browsers(server: psutil.Process, nice: int) -> int:
    """Hold every thread this process started (the Playwright driver, Chromium and its renderers), except the
    server's, at niceness ``nice`` at least; returns how many threads were lowered.

    ``os.nice`` alone is not enough: Chromium running as root sets its own threads' priorities (its browser and
    GPU processes to -8, its renderers back to 0), which would have the browsers outrank the server they measure.
    """
    lowered = 0
    spared = {server.pid, *(p.pid for p in _children(server))}
    for process in _children(psutil.Process()):
        if process.pid in spared:
            continue
        for thread in Path(f"/proc/{process.pid}/task").glob("*"):
            try:
                tid = int(thread.name)
                if os.getpriority(os.PRIO_PROCESS, tid) < nice:  # on Linux a thread id names that thread alone
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                    lowered += 1
            except (OSError, ValueError):  # the thread ended meanwhile
                continue
    return lowered


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=True))
    except psutil.Error:
        return []


async def _keep_niced(server: psutil.Process, nice: int) -> None:
    while True:  # Chromium starts renderers and threads, and sets their priorities, as it goes
        renice_browsers(server, nice)
        await asyncio.sleep(0.5)


async def drive(base_url: str, accounts: Sequence[Account], load: BrowserLoad,
                server: psutil.Process) -> tuple[list[SessionTally], list[ServerSample], float]:
    """Run every annotator in one Chromium; sample the server while they rate. (tallies, samples, seconds)"""
    from playwright.async_api import async_playwright

    tallies = [SessionTally(account.name) for account in accounts]
    start, deadline, samples = asyncio.Barrier(len(accounts) + 1), [float("inf")], []
    async with async_playwright() as api:
        browser = await api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        niced = asyncio.create_task(_keep_niced(server, os.getpriority(os.PRIO_PROCESS, 0))) if load.nice else None
        try:
            sessions = [asyncio.create_task(annotator(browser, base_url, account, start, deadline, tally,
                                                      load.think_s))
                        for account, tally in zip(accounts, tallies, strict=True)]
            await start.wait()  # everyone is logged in: what follows is rating only
            began = time.monotonic()
            deadline[0] = began + load.seconds
            samples.append(sample(server, began))
            every = max(1.0, min(30.0, load.seconds / 20))
            while not all(task.done() for task in sessions):
                await asyncio.wait(sessions, timeout=every)
                samples.append(sample(server, began))
            seconds = time.monotonic() - began
            for task in sessions:
                task.result()  # a session that crashed outside a rating (log-in) raises here
        finally:
            if niced is not None:
                niced.cancel()
            await browser.close()
    return tallies, samples, seconds


def stored_by_annotator(url: str, campaign_id: int, overlap: int) -> tuple[Audit, dict[str, int]]:
    """The store's audit of the campaign (duplicates, counters), and how many ratings each annotator stored.
    Browsers never learn rating ids, so acknowledged and stored are compared per annotator instead."""
    store = open_store(url, upgrade=False)
    try:
        found = replace(audit(store, campaign_id, overlap, acknowledged=set()), lost=[], unacknowledged=[])
        with store.sessions() as session:
            rows = session.execute(
                select(User.name, func.count(Rating.id)).join(Rating, Rating.user_id == User.id)
                .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
                .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False))
                .group_by(User.name)).all()
            counts = {name: count for name, count in rows}
    finally:
        store.close()
    return found, counts


def run_browser_load(url: str, load: BrowserLoad, folder: Path) -> BrowserLoadResult:
    """Seed a campaign at ``url``, serve ``evaltune ui`` over it, rate through browsers, audit the store."""
    store = open_store(url)
    try:
        campaign_id, accounts = seed_campaign(store, load.seed())
    finally:
        store.close()
    server_env = load.server_env()
    serving = (serve_app(url, folder, env=server_env) if load.trace_memory is None
               else _serve_traced(url, folder, server_env, load.trace_memory))
    with serving as base_url:
        server = server_process(base_url)
        if load.nice:
            os.nice(load.nice)  # after the server started: only the driver and the browsers it launches
        tallies, samples, seconds = asyncio.run(drive(base_url, accounts, load, server))
    found, stored_by = stored_by_annotator(url, campaign_id, load.overlap)
    return BrowserLoadResult(load, tallies, found, stored_by, samples, seconds, os.getloadavg())


@contextmanager
def _serve_traced(db_url: str, folder: Path, env: dict[str, str], probe: Path) -> Iterator[str]:
    """The server ``evaltune ui`` would start, launched through ``bench/server_memory.py`` writing to ``probe``."""
    port = _free_port()
    command = streamlit_command("127.0.0.1", port)[2:]  # streamlit run ... (without the interpreter and -m)
    launcher = [sys.executable, str(Path(__file__).with_name("server_memory.py")), str(probe), "--", *command]
    log = (folder / "server.log").open("wb")
    environment = {**server_config.server_environment(), "EVALTUNE_DB_URL": db_url, **env}  # as evaltune ui's
    server = subprocess.Popen(launcher, env=environment, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextmanager
def durable_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server as ``bench.loadkit.throwaway_postgres`` starts one, but with fsync,
    synchronous_commit and full_page_writes left on (the tests' server turns them off on its command line, which
    no later setting overrides), so that a commit is on disk when acknowledged, as SQLite's are
    (``synchronous=FULL``) and a production server's."""
    from tests.fixtures import postgres

    fast = postgres.SERVER_OPTIONS
    postgres.SERVER_OPTIONS = ""  # read when the server starts
    try:
        with throwaway_postgres() as url:
            postgres.SERVER_OPTIONS = fast
            yield url
    finally:
        postgres.SERVER_OPTIONS = fast


def _think(text: str) -> tuple[float, float]:
    """``--think``: "2" (seconds, each time) or "1-3" (a random time between 1 and 3 s each time)."""
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give seconds (2) or a range (1-3), not {text!r}") from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError(f"give seconds from 0 up, the smaller first, not {text!r}")
    return bounds


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=_positive(int), default=4, help="browser sessions (annotators) at once")
    parser.add_argument("--seconds", type=_positive(float), default=60.0, help="how long they rate")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--nice", type=int, default=0, nargs="?", const=10,
                        help="lower the browsers' priority by this much (--nice alone: 10)")
    parser.add_argument("--gc", choices=("on", "off"), help="Streamlit's runner.postScriptGC (default: evaltune's)")
    parser.add_argument("--overlap", type=int, default=3, help="ratings wanted per item")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (no database); default: start a throwaway one")
    parser.add_argument("--pg-fsync", choices=("on", "off"), default="on",
                        help="the throwaway PostgreSQL server's fsync and synchronous_commit (the tests' server runs "
                             "with both off; on: a commit is on disk when acknowledged, as SQLite's are)")
    parser.add_argument("--samples", action="store_true", help="print the server's CPU and RSS over time")
    parser.add_argument("--think", type=_think, default=(0.0, 0.0), metavar="SECONDS",
                        help="reading time before each rating: seconds (2) or a random range (1-3); default 0")
    parser.add_argument("--trace-memory", type=Path, metavar="PROBE.log",
                        help="serve through bench/server_memory.py, writing where the memory goes to this file")
    args = parser.parse_args(argv)
    load = BrowserLoad(args.sessions, args.seconds, args.backend, args.nice, args.gc, args.overlap, args.think,
                       args.trace_memory)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} {load.backend}: {load.sessions} browser sessions for "
          f"{load.seconds:g} s, think {load.think_label()} s, nice {load.nice}, "
          f"postScriptGC {load.gc or 'as evaltune ui sets it'}, load average before "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", flush=True)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        server = args.postgres
        if load.backend == "postgres" and not server:
            print(f"postgres: a throwaway server, fsync and synchronous_commit {args.pg_fsync}", flush=True)
            server = stack.enter_context(durable_postgres()) if args.pg_fsync == "on" else None
        urls = stack.enter_context(store_urls([load.backend], Path(folder), server))
        result = run_browser_load(urls[load.backend], load, Path(folder))
    print(table([result.row()]))
    if args.samples:
        print(table([{"at s": s.at_s, "server CPU s": round(s.cpu_s, 1), "RSS MiB": s.rss_mib}
                     for s in result.samples]))
        print(table(result.rss_by_minute()))
    for problem in result.problems():
        print(f"{load.backend}: {problem}")
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
