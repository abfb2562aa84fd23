"""Annotators rating at once, on SQLite and PostgreSQL: is every acknowledged rating stored, exactly once?

    python bench/load_ratings.py [--seconds 300] [--sessions 20] [--overlap 3] [--backend sqlite|postgres]
                                 [--postgres postgresql+psycopg://USER@HOST:PORT]

Each annotator session runs in its own process with its own engine and connection, as the annotators of a
real deployment each hold their own connection: processes (not threads) so that the sessions' Python work runs
in parallel instead of queueing on one interpreter lock, which would add to the latencies measured here.
A session does what the Rate page does, with no reading time: open the page (the open campaigns, the
annotator's progress, claim the next item, load the task), then submit a Likert rating through the same
transaction as the page's Submit button. A submit that returns a rating id is an acknowledgement; its
latency is the submit's. Afterwards the store is audited: every acknowledged rating stored, nothing stored
that was not acknowledged, nobody rating an item twice, no item over its overlap, counters equal to rows.
Without ``--postgres`` a throwaway PostgreSQL server is started for the run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, make_url, select

from bench.loadkit import BACKENDS, percentile, store_urls, table
from evaltune.db import queries
from evaltune.db.engine import Store, open_store
from evaltune.db.evaluation import Generation, Run
from evaltune.db.ratings import Assignment, CampaignItem, Rating, User
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account, hash_password
from evaltune.feedback_ui.campaigns import campaigns_for, create_campaign
from evaltune.feedback_ui.progress import my_progress
from evaltune.feedback_ui.queue import Reservation, claim_next, submit_rating
from evaltune.feedback_ui.rating_task import load_task
from evaltune.feedback_ui.transactions import in_transaction

MAX_ERRORS_PER_SESSION = 50  # a store that fails every request would otherwise spin for the whole run
# Campaigns are sized for this many ratings per session and second, several times what 2 CPU cores reach
# (about 1.5 with 20 sessions, 50 with one), so that no session runs out of items on a faster machine.
RATINGS_PER_SESSION_SECOND = 10


@dataclass(frozen=True)
class LoadSettings:
    """How many annotators rate, for how long, how many ratings each item wants, and how many items there are
    (0: enough that nobody runs out at ``RATINGS_PER_SESSION_SECOND``)."""

    sessions: int = 20
    seconds: float = 300.0
    overlap: int = 3
    items: int = 0

    def item_count(self) -> int:
        if self.items:
            return self.items
        # Each item takes ``overlap`` ratings, and one annotator rates an item once.
        wanted = self.seconds * RATINGS_PER_SESSION_SECOND * max(self.sessions / self.overlap, 5)
        return max(100, int(wanted))


@dataclass
class SessionTally:
    """What one annotator session saw: the rating ids acknowledged to it, latencies, errors."""

    annotator: str
    acknowledged: list[int] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ran_out: bool = False
    seconds: float = 0.0


@dataclass
class Audit:
    """The store after the load, against what the sessions were told."""

    stored: int
    lost: list[int]  # acknowledged, not stored
    unacknowledged: list[int]  # stored, never acknowledged
    duplicates: int  # an annotator's second rating of an item, plus ratings beyond an item's overlap
    miscounted_items: int  # ratings_done or open_holds not equal to the rows behind them


@dataclass
class LoadResult:
    backend: str
    settings: LoadSettings
    tallies: list[SessionTally]
    audit: Audit
    seconds: float

    @property
    def acknowledged(self) -> int:
        return sum(len(t.acknowledged) for t in self.tallies)

    @property
    def errors(self) -> list[str]:
        return [error for t in self.tallies for error in t.errors]

    def submit_ms(self) -> list[float]:
        return [ms for t in self.tallies for ms in t.submit_ms]

    def page_ms(self) -> list[float]:
        return [ms for t in self.tallies for ms in t.page_ms]

    def drift(self) -> tuple[float, float]:
        """Submit p95 over each session's first tenth of ratings and over its last tenth: does the load wear
        the store down as ratings pile up?"""
        tenths = [(t.submit_ms[: len(t.submit_ms) // 10], t.submit_ms[-(len(t.submit_ms) // 10):])
                  for t in self.tallies if len(t.submit_ms) >= 10]
        first = [ms for head, _tail in tenths for ms in head]
        last = [ms for _head, tail in tenths for ms in tail]
        return percentile(first, 95), percentile(last, 95)

    def problems(self) -> list[str]:
        """Every way the run broke the promise (empty when nothing was lost and nothing doubled)."""
        audit = self.audit
        found = [f"{len(audit.lost)} acknowledged ratings not stored: {audit.lost[:10]}"] if audit.lost else []
        if audit.unacknowledged:
            found.append(f"{len(audit.unacknowledged)} stored ratings never acknowledged: {audit.unacknowledged[:10]}")
        if audit.duplicates:
            found.append(f"{audit.duplicates} duplicate ratings")
        if audit.miscounted_items:
            found.append(f"{audit.miscounted_items} items whose counters disagree with their rows")
        if self.errors:
            found.append(f"{len(self.errors)} errors, e.g. {self.errors[0]}")
        if any(t.ran_out for t in self.tallies):
            found.append("a session ran out of items: raise --items")
        return found

    def row(self) -> dict[str, Any]:
        submit, page = self.submit_ms(), self.page_ms()
        return {
            "backend": self.backend, "sessions": self.settings.sessions, "seconds": self.seconds,
            "acknowledged": self.acknowledged, "stored": self.audit.stored, "duplicates": self.audit.duplicates,
            "errors": len(self.errors), "ratings/s": self.acknowledged / self.seconds if self.seconds else 0.0,
            "p50 ms": percentile(submit, 50), "p95 ms": percentile(submit, 95),
            "page p50 ms": percentile(page, 50), "page p95 ms": percentile(page, 95),
        }


def seed_campaign(store: Store, settings: LoadSettings) -> tuple[int, list[Account]]:
    """A run of ``settings.item_count()`` outputs, a campaign on it with the overlap, and the annotators."""
    count, tag = settings.item_count(), uuid.uuid4().hex[:8]
    items = [{"key": f"load-{i}", "input": f"Question {i}: what is the capital of country {i}?",
              "references": [f"Capital {i}"]} for i in range(count)]
    with store.session_scope() as session:
        suite = queries.get_or_create_suite(session, name="load", content_hash=f"load-{tag}", items=items)
        model = queries.get_or_create_model_version(session, name="load model", backend="hf",
                                                    location="/models/load", fingerprint=f"load-{tag}")
        run = Run(suite_id=suite.id, model_version_id=model.id, fingerprint=f"load-{tag}", status="completed")
        session.add(run)
        session.flush()
        outputs = [{"run_id": run.id, "item_id": item.id, "cache_key": f"load-{item.position}",
                    "prompt": str(item.input), "output": f"The capital is Capital {item.position}."}
                   for item in suite.items]
        session.execute(insert(Generation), outputs)
        campaign = create_campaign(session, None, name=f"load {tag}", run_ids=[run.id], overlap=settings.overlap)
        password = hash_password("load-test-password")  # argon2 is slow: one hash for every annotator
        users = [User(name=f"annotator-{tag}-{n}", role="annotator", password_hash=password, active=True)
                 for n in range(settings.sessions)]
        session.add_all(users)
        session.flush()
        return campaign.id, [Account(user.id, user.name, user.role) for user in users]


def open_rate_page(store: Store, account: Account, campaign_id: int) -> Reservation | None:
    """What the Rate page does before it shows an item: campaigns, progress, claim, the task's texts."""
    with store.sessions() as session:
        campaigns_for(session, account)
        my_progress(session, account.id, campaign_id)
    reservation = in_transaction(store, lambda s: claim_next(s, account, campaign_id))
    if reservation is not None:
        with store.sessions() as session:
            load_task(session, account, reservation)
    return reservation


def submit(store: Store, account: Account, reservation: Reservation, answer: SingleAnswer) -> int:
    """What the Rate page's Submit button does: store the rating in one transaction; its id once committed."""
    return in_transaction(store, lambda s: submit_rating(s, account, reservation.assignment_id, answer))


def _rate_until(store: Store, account: Account, campaign_id: int, deadline: float, tally: SessionTally) -> None:
    while time.monotonic() < deadline and len(tally.errors) < MAX_ERRORS_PER_SESSION:
        started = time.perf_counter()
        try:
            reservation = open_rate_page(store, account, campaign_id)
        except Exception as error:
            tally.errors.append(f"claim: {type(error).__name__}: {error}")
            continue
        tally.page_ms.append((time.perf_counter() - started) * 1000)
        if reservation is None:
            tally.ran_out = True
            return
        answer = SingleAnswer(likert=1 + len(tally.acknowledged) % 5, hallucination=False, comment="load test")
        started = time.perf_counter()
        try:
            rating_id = submit(store, account, reservation, answer)
        except Exception as error:  # the annotator would see "Not stored: ..."
            tally.errors.append(f"submit: {type(error).__name__}: {error}")
            continue
        tally.submit_ms.append((time.perf_counter() - started) * 1000)
        tally.acknowledged.append(rating_id)


def annotator_session(url: str, account: Account, campaign_id: int, seconds: float, start: Any,
                      results: Any) -> None:
    """One annotator in a process of its own: its own engine, rating until ``seconds`` after the start signal."""
    tally = SessionTally(account.name)
    try:
        store = open_store(url, upgrade=False)
        try:
            with store.sessions() as session:
                campaigns_for(session, account)  # connect before the start, so that connecting is not measured
            start.wait()
            began = time.monotonic()
            _rate_until(store, account, campaign_id, began + seconds, tally)
            tally.seconds = time.monotonic() - began
        finally:
            store.close()
    except BaseException as error:
        tally.errors.append(f"session: {type(error).__name__}: {error}\n{traceback.format_exc(limit=4)}")
    results.put(tally)


def _process_context() -> Any:
    # fork: the sessions start in milliseconds with the modules already imported; the parent holds no
    # open connection when it forks (its store is closed first). spawn where fork does not exist.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_sessions(url: str, campaign_id: int, accounts: Sequence[Account], seconds: float) -> list[SessionTally]:
    """Start one process per annotator, release them together, and collect what each one saw."""
    context = _process_context()
    start, results = context.Barrier(len(accounts)), context.Queue()
    processes = [context.Process(target=annotator_session, args=(url, account, campaign_id, seconds, start, results),
                                 daemon=True) for account in accounts]
    for process in processes:
        process.start()
    try:
        # Read before joining: a child cannot exit while its result is still in the pipe.
        tallies = [results.get(timeout=seconds + 300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return tallies


def audit(store: Store, campaign_id: int, overlap: int, acknowledged: set[int]) -> Audit:
    """Count what the store holds for the campaign against the acknowledged rating ids."""
    with store.sessions() as session:
        rows = session.execute(
            select(Rating.id, Rating.campaign_item_id, Rating.user_id)
            .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
            .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False))
        ).all()
        counters = {item_id: (done, holds) for item_id, done, holds in session.execute(
            select(CampaignItem.id, CampaignItem.ratings_done, CampaignItem.open_holds)
            .where(CampaignItem.campaign_id == campaign_id))}
        open_holds = Counter(session.execute(
            select(Assignment.campaign_item_id)
            .join(CampaignItem, CampaignItem.id == Assignment.campaign_item_id)
            .where(CampaignItem.campaign_id == campaign_id, Assignment.status == "open")).scalars())
    stored = {rating_id for rating_id, _item, _user in rows}
    per_pair = Counter((item, user) for _id, item, user in rows)
    per_item = Counter(item for _id, item, _user in rows)
    duplicates = sum(n - 1 for n in per_pair.values()) + sum(max(0, n - overlap) for n in per_item.values())
    miscounted = sum(1 for item, (done, holds) in counters.items()
                     if done != per_item[item] or holds != open_holds[item])
    return Audit(len(rows), sorted(acknowledged - stored), sorted(stored - acknowledged), duplicates, miscounted)


def run_load(url: str, settings: LoadSettings, backend: str = "") -> LoadResult:
    """Seed a campaign in the store at ``url``, run the annotator sessions against it, and audit the store."""
    store = open_store(url)
    try:
        campaign_id, accounts = seed_campaign(store, settings)
    finally:
        store.close()  # no connection may cross the fork
    tallies = run_sessions(url, campaign_id, accounts, settings.seconds)
    acknowledged = {rating_id for tally in tallies for rating_id in tally.acknowledged}
    store = open_store(url, upgrade=False)
    try:
        found = audit(store, campaign_id, settings.overlap, acknowledged)
    finally:
        store.close()
    seconds = max((tally.seconds for tally in tallies), default=0.0)
    return LoadResult(backend or make_url(url).get_backend_name(), settings, tallies, found, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--overlap", type=int, default=3, help="ratings wanted per item")
    parser.add_argument("--items", type=int, default=0, help="campaign items (default: enough not to run out)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="default: both")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (no database); default: start a throwaway one")
    args = parser.parse_args(argv)
    settings = LoadSettings(args.sessions, args.seconds, args.overlap, args.items)
    results = []
    with tempfile.TemporaryDirectory() as folder, store_urls(args.backend or BACKENDS, Path(folder),
                                                              args.postgres) as urls:
        for backend, url in urls.items():
            print(f"{backend}: {settings.sessions} sessions for {settings.seconds:g}s on "
                  f"{settings.item_count()} items (overlap {settings.overlap})", flush=True)
            results.append(run_load(url, settings, backend))
    print(table([result.row() for result in results]))
    for result in results:
        print("{}: submit p95 {:.1f} ms over the first tenth of each session's ratings, {:.1f} ms over the last"
              .format(result.backend, *result.drift()))
        for problem in result.problems():
            print(f"{result.backend}: {problem}")
    return 1 if any(result.problems() for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
