"""The Progress page counts annotators' reservations as open work and an admin's own apart (streamlit.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.db import Store
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.progress import annotator_progress, campaign_progress
from evaltune.feedback_ui.queue import claim_next, submit_rating
from tests.fixtures.app_pages import errors, open_page, texts
from tests.fixtures.feedback_seed import seed_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_an_admins_own_reservation_is_not_annotators_open_work(store: Store) -> None:
    seeded = seed_store(store, items=4)
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=2).id
    with store.session_scope() as s:  # ann1 rates one item and holds the next; the admin tries the Rate page
        first = claim_next(s, seeded.users["ann1"], campaign)
        assert first is not None
        submit_rating(s, seeded.users["ann1"], first.assignment_id, SingleAnswer(likert=4, hallucination=False))
        assert claim_next(s, seeded.users["ann1"], campaign) is not None
        assert claim_next(s, seeded.users["admin"], campaign) is not None

    with store.sessions() as s:
        [progress] = campaign_progress(s)
        people = annotator_progress(s, campaign)
    assert (progress.open_holds, progress.admin_holds, progress.ratings) == (1, 1, 1)
    assert people == [{"annotator": "ann1", "rated": 1, "skipped": 0, "open now": 1,
                       "last rating": people[0]["last rating"]}]

    at = open_page("admin", "progress")
    assert not errors(at)
    campaigns = at.dataframe[0].value
    assert campaigns["open now"].tolist() == [1]
    assert "You hold 1 item yourself (campaign #1): not counted in 'open now'" in texts(at)
    assert at.dataframe[1].value["annotator"].tolist() == ["ann1"]

    viewer = open_page("view", "progress")  # a viewer holds nothing and is told nothing about holds of its own
    assert viewer.dataframe[0].value["open now"].tolist() == [1] and "You hold" not in texts(viewer)
