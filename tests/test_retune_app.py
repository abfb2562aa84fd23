"""The app's retune page: an admin builds a dataset from ratings, queues a job, sees it and cancels it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.training import PreferenceDataset, RetuneJob
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.retune.config import CONFIGS, DpoConfig, SftConfig, option_fields
from evaltune.retune.strategies import parameters
from tests.fixtures.feedback_seed import PASSWORD, rate_campaign, seed_store

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _admin_builds_a_dataset(store: Store) -> tuple[AppTest, int]:
    """The retune page, logged in as an admin who has built a correction dataset (4 rows) from ratings."""
    seeded = seed_store(store, items=4)
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="fixes", run_ids=seeded.run_ids[:1])
        answer = SingleAnswer(likert=2, hallucination=False, thumbs=False, correction="I don't know.")
        rate_campaign(session, seeded.users["ann1"], campaign.id, lambda _task: answer)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "retune"
    at.run()
    at.text_input(key="login_name").input("admin")
    at.text_input(key="login_password").input(PASSWORD)
    _button(at, "Log in").click()
    at.run()
    inputs = {element.key for element in [*at.selectbox, *at.number_input, *at.text_input]}
    assert {f"rt_{parameter.name}" for parameter in parameters()} <= inputs  # the form comes from the registry
    at.selectbox(key="rt_strategy").set_value("correction")
    at.number_input(key="rt_holdout").set_value(0.0)
    _button(at, "Build dataset").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        dataset = session.scalars(select(PreferenceDataset)).one()
        assert dataset.strategy == "correction" and dataset.counts["train"] == 4
        return at, dataset.id


def test_an_admin_builds_a_dataset_queues_a_job_and_cancels_it(store: Store) -> None:
    at, dataset_id = _admin_builds_a_dataset(store)
    _button(at, "Queue job").click()
    at.run()
    with store.sessions() as session:
        job = session.scalars(select(RetuneJob)).one()
        assert (job.status, job.method, job.dataset_id, job.eval_suites) == ("queued", "dpo", dataset_id, ["smoke"])
        assert job.config == DpoConfig().as_json()  # the form's fields start at the dataclass defaults
    _button(at, "Cancel job").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        assert session.scalars(select(RetuneJob)).one().status == "cancelled"


def test_the_queue_form_shows_each_methods_own_fields_at_their_dataclass_defaults(store: Store) -> None:
    at, dataset_id = _admin_builds_a_dataset(store)
    for method, cls in CONFIGS.items():
        at.selectbox(key=f"rt_method_{dataset_id}").set_value(method)
        at.run()
        for option in option_fields([cls]):
            key = f"rt_{method}_{option.name}"
            widget = {bool: at.checkbox, str: at.text_input, tuple: at.text_input}.get(option.kind, at.number_input)
            shown = widget(key=key).value
            if option.kind is tuple:
                shown = tuple(name.strip() for name in shown.split(",") if name.strip())
            assert shown == option.default, key
        others = {o.name for o in option_fields()} - {o.name for o in option_fields([cls])}
        assert not [w for w in at.number_input if any(str(w.key).endswith(name) for name in others)], method
    at.number_input(key="rt_sft_epochs").set_value(1.5)
    _button(at, "Queue job").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        job = session.scalars(select(RetuneJob)).one()
        assert (job.method, job.config) == ("sft", SftConfig(epochs=1.5).as_json())
