"""What bench/scale.py found, pinned: reports of large runs hold where a store bounds a query's parameters.

A report used to ask for its runs' ratings with ``generation_id IN (...every output's id...)``: past SQLite's
bound-parameter limit (32,766 in a stock build, 999 before 3.32) and PostgreSQL's 65,535, a report of two large
runs failed. Here every SQLite connection is held to 999 parameters, so 1,100 items are enough to show it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from evaltune.db.engine import Store
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.feedback_ui.rating_task import load_task
from tests.conftest import Cli
from tests.fixtures.feedback_seed import seed_runs, seed_users

ITEMS = 1100
PARAMETER_LIMIT = 999


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _hold_to_limit(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, PARAMETER_LIMIT)


@pytest.fixture
def small_parameter_limit() -> Iterator[None]:
    """Every SQLite connection opened meanwhile accepts at most 999 bound parameters per statement."""
    event.listen(Engine, "connect", _hold_to_limit)
    yield
    event.remove(Engine, "connect", _hold_to_limit)


def _rate(store: Store, rater: Account, campaign_id: int, answers: list[SingleAnswer | PairAnswer]) -> None:
    """Rate the queue's next items, one answer each, as the rating page submits them."""
    with store.session_scope() as session:
        for answer in answers:
            reservation = claim_next(session, rater, campaign_id)
            assert reservation is not None
            if isinstance(answer, PairAnswer):  # vote for run 2's output, wherever the page showed it
                shown_a = load_task(session, rater, reservation).outputs[0]
                answer = PairAnswer("a" if shown_a.startswith("Run 2") else "b")
            submit_rating(session, rater, reservation.assignment_id, answer)


def test_report_of_runs_past_the_parameter_limit(small_parameter_limit: None, store: Store, cli: Cli) -> None:
    with store.session_scope() as session:
        seeded = seed_runs(session, items=ITEMS)
        rater = seed_users(session, {"ann1": "annotator"})["ann1"]
        baseline, candidate = seeded.run_ids
        single = create_campaign(session, None, name="likert", run_ids=[baseline]).id
        pairs = create_campaign(session, None, name="a/b", run_ids=[baseline, candidate], pairwise=True).id
    _rate(store, rater, single, [SingleAnswer(likert=score, hallucination=False) for score in (4, 4, 5)])
    _rate(store, rater, pairs, [PairAnswer("a"), PairAnswer("a")])

    code, out, err = cli("report", str(baseline), str(candidate), "--format", "json")

    assert code == 0, err
    report = json.loads(out)
    assert report["shared_items"] == ITEMS
    human = report["human"]
    assert human["likert_baseline"]["n"] == 3 and human["likert_baseline"]["value"] == pytest.approx(13 / 3)
    assert human["likert_candidate"]["n"] == 0
    assert (human["ab_wins"], human["ab_losses"], human["ab_ties"]) == (2, 0, 0)


def test_report_pages_say_how_many_flips_they_leave_out(store: Store, cli: Cli) -> None:
    with store.session_scope() as session:
        baseline, candidate = seed_runs(session, items=30).run_ids  # every item flips: answer_match 1 -> 0

    code, page, err = cli("report", str(baseline), str(candidate), "--format", "html")
    assert code == 0, err
    assert "<h2>Flipped items (30; first 20)</h2>" in page
    assert (f"10 more flipped items not shown: <code>evaltune report {baseline} {candidate} --format json</code> "
            f"lists every one, <code>evaltune runs outputs {candidate} --failures</code>") in page
    code, text, err = cli("report", str(baseline), str(candidate), "--format", "md")
    assert code == 0, err
    assert f"10 more flipped items not shown: `evaltune report {baseline} {candidate} --format json`" in text
    code, out, err = cli("report", str(baseline), str(candidate), "--format", "json")
    assert code == 0, err
    assert len(json.loads(out)["flipped"]) == 30  # the JSON keeps every one
