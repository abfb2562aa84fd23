"""The app's retune page: an admin builds a dataset from ratings, queues a job, sees it and cancels it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store, open_store
from evaltune.db.ratings import CampaignItem, Rating
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.feedback_ui.campaigns import create_campaign
from tests.fixtures.feedback_seed import PASSWORD, seed_store

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    opened = open_store(url)
    yield opened
    opened.close()


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def test_an_admin_builds_a_dataset_queues_a_job_and_cancels_it(store: Store) -> None:
    seeded = seed_store(store, items=4)
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="fixes", run_ids=seeded.run_ids[:1])
        for task in session.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)):
            session.add(Rating(campaign_item_id=task.id, user_id=seeded.users["ann1"].id,
                               generation_id=task.generation_id, thumbs=False, correction="I don't know."))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "retune"
    at.run()
    at.text_input(key="login_name").input("admin")
    at.text_input(key="login_password").input(PASSWORD)
    _button(at, "Log in").click()
    at.run()
    at.selectbox(key="rt_strategy").set_value("correction")
    at.number_input(key="rt_holdout").set_value(0.0)
    _button(at, "Build dataset").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        dataset = session.scalars(select(PreferenceDataset)).one()
        assert dataset.strategy == "correction" and dataset.counts["train"] == 4
    _button(at, "Queue job").click()
    at.run()
    with store.sessions() as session:
        job = session.scalars(select(RetuneJob)).one()
        assert (job.status, job.method, job.dataset_id, job.eval_suites) == ("queued", "dpo", dataset.id, ["smoke"])
    _button(at, "Cancel job").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        assert session.scalars(select(RetuneJob)).one().status == "cancelled"
