"""kill -9 of the rating app while it writes a rating, on SQLite and PostgreSQL.

The victim is a process storing ratings exactly as the Rate page's submit button does (see
``tests.fault_helpers``); it is killed inside the transaction of its fifth rating, after the INSERT and
before the commit. Afterwards every rating it acknowledged is stored, the interrupted one is not (no partial
or duplicate rows), the item's counters match the rows, the reservation expires and the item is offered
again: the real app (Streamlit, through ``AppTest``) offers it, the page's submit transaction stores it, and a
new process rates the rest.

kill -9 of ``evaltune ui`` itself must stop the app, so that it can be started again on its port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from evaltune.db.base import utcnow
from evaltune.db.evaluation import SuiteItem
from evaltune.db.ratings import Assignment, CampaignItem, Rating
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import submit_rating
from tests.fault_helpers import PROJECT_ROOT, evaltune, kill_when, opened, read, start, wait_for
from tests.fixtures.feedback_seed import PASSWORD, seed_store
from tests.fixtures.postgres import _free_port

ITEMS = 8
ACKNOWLEDGED = 4  # ratings stored before the one the kill interrupts
APP = str(PROJECT_ROOT / "feedback_ui" / "app.py")
RESERVATION_S = 3


def _rater(url: str, campaign_id: int, user_id: int, pause_at: int) -> list[str]:
    return [sys.executable, "-m", "tests.fault_helpers", "rate", url, str(campaign_id), str(user_id), "ann",
            str(pause_at)]


def _consistent(url: str) -> list[str]:
    """Items whose counters disagree with the rows: ratings_done = ratings, open_holds = open reservations."""
    def check(session: Session) -> list[str]:
        rows = session.execute(
            select(CampaignItem.id, CampaignItem.ratings_done, CampaignItem.open_holds,
                   select(func.count()).where(Rating.campaign_item_id == CampaignItem.id).scalar_subquery(),
                   select(func.count()).where(Assignment.campaign_item_id == CampaignItem.id,
                                              Assignment.status == "open").scalar_subquery()))
        return [f"item {i}: {done}/{ratings} ratings, {holds}/{held} holds"
                for i, done, holds, ratings, held in rows if (done, holds) != (ratings, held)]
    return read(url, check)


def _rate_in_the_app(url: str, annotator: Account, item_key: str) -> None:
    """Log in to the real app as ``ann``: the Rate page offers (and reserves) ``item_key``; rate it through the
    transaction the page's rating form runs when it sends (``queue.submit_rating``: AppTest cannot drive the
    form's JavaScript; the browser tests do)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"Item {item_key}" in str(c.value) for c in at.caption), [c.value for c in at.caption]
    with opened(url) as store, store.session_scope() as session:
        reserved = session.scalars(select(Assignment.id).where(Assignment.user_id == annotator.id,
                                                               Assignment.status == "open")).one()
        submit_rating(session, annotator, reserved, SingleAnswer(likert=4, hallucination=False))


def test_the_app_killed_mid_write_keeps_every_acknowledged_rating_and_frees_the_item(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    monkeypatch.setenv("EVALTUNE_RESERVATION_MINUTES", str(RESERVATION_S / 60))
    with opened(store_url) as store:
        store.upgrade()
        seeded = seed_store(store, items=ITEMS, users={"ann": "annotator"})
        with store.session_scope() as session:
            campaign_id = create_campaign(session, None, name="faults", run_ids=seeded.run_ids[:1]).id
    ann = seeded.users["ann"]
    log = tmp_path / "rater.log"
    victim = start(_rater(store_url, campaign_id, ann.id, ACKNOWLEDGED), dict(os.environ), log)
    kill_when(victim, lambda: "writing" in log.read_text(), "a rating was being written", log)

    said = log.read_text()
    acknowledged = {int(n) for n in re.findall(r"stored rating (\d+)", said)}
    assert len(acknowledged) == ACKNOWLEDGED
    interrupted = int(re.findall(r"writing assignment (\d+)", said)[0])
    ratings = read(store_url, lambda s: list(s.execute(select(Rating.id, Rating.campaign_item_id)).tuples()))
    assert {rating_id for rating_id, _ in ratings} == acknowledged  # all it said it stored, and nothing else
    assert len({item for _, item in ratings}) == len(ratings)  # no duplicates
    assert _consistent(store_url) == []
    held = read(store_url, lambda s: s.get_one(Assignment, interrupted))
    assert held.status == "open"  # still held for the dead session, until it expires
    item_key = read(store_url, lambda s: s.scalar(
        select(SuiteItem.key).join(CampaignItem, CampaignItem.item_id == SuiteItem.id)
        .where(CampaignItem.id == held.campaign_item_id)))

    time.sleep(max(0.0, (held.expires_at - utcnow()).total_seconds()) + 0.1)
    _rate_in_the_app(store_url, ann, item_key)  # the expired hold is released and the same item offered again
    assert read(store_url, lambda s: s.get_one(Assignment, interrupted)).status == "done"

    rest = start(_rater(store_url, campaign_id, ann.id, -1), dict(os.environ), tmp_path / "rest.log")
    assert rest.wait(timeout=300) == 0, (tmp_path / "rest.log").read_text()
    assert "nothing left" in (tmp_path / "rest.log").read_text()
    ratings = read(store_url, lambda s: list(s.execute(select(Rating.campaign_item_id)).scalars()))
    assert len(ratings) == len(set(ratings)) == ITEMS  # every item rated once (overlap 1)
    assert _consistent(store_url) == []


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_kill_9_of_evaltune_ui_stops_the_app_and_frees_its_port(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"EVALTUNE_DB_URL": f"sqlite:///{tmp_path / 'ui.db'}",
                        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    with (tmp_path / "ui.log").open("wb") as log:
        app = subprocess.Popen(evaltune("ui", "--port", str(port)), env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(app, lambda: _answers(url), "the app answered", tmp_path / "ui.log", timeout_s=120)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _answers(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _answers(url), "the app still answers after kill -9 of 'evaltune ui'"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.pid, signal.SIGKILL)  # the whole session: an orphaned Streamlit child too
