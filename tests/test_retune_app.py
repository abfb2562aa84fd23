"""The app's retune page: an admin builds a dataset from ratings, queues a job, sees it and cancels it; a dataset a
retune cannot use is never offered, and says why."""

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
from tests.conftest import invoke_main
from tests.fixtures.feedback_seed import PASSWORD, rate_campaign, seed_store

ITEMS = 8  # one full batch: the fewest training rows a retune takes without --force (retune.jobs.MIN_TRAIN_ROWS)

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _build(at: AppTest, strategy: str) -> None:
    """Build a dataset with ``strategy`` and nothing held out, through the page's form."""
    at.selectbox(key="rt_strategy").set_value(strategy)
    at.number_input(key="rt_holdout").set_value(0.0)
    _button(at, "Build dataset").click()
    at.run()
    assert not at.exception


def _admin_builds_a_dataset(store: Store) -> tuple[AppTest, int]:
    """The retune page, logged in as an admin who has built a correction dataset (8 rows) from ratings."""
    seeded = seed_store(store, items=ITEMS)
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
    _build(at, "correction")
    with store.sessions() as session:
        dataset = session.scalars(select(PreferenceDataset)).one()
        assert dataset.strategy == "correction" and dataset.counts["train"] == ITEMS
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


def test_the_queue_form_shows_the_dataset_methods_own_fields_at_their_dataclass_defaults(store: Store) -> None:
    at, dpo_dataset = _admin_builds_a_dataset(store)
    _build(at, "kto")
    _build(at, "sft")
    for dataset_id, method in ((dpo_dataset, "dpo"), (dpo_dataset + 1, "kto"), (dpo_dataset + 2, "sft")):
        at.selectbox(key="rt_dataset").set_value(dataset_id)  # the method is the dataset's: its rows fit no other
        at.run()
        for option in option_fields([CONFIGS[method]]):
            key = f"rt_{method}_{option.name}"
            widget = {bool: at.checkbox, str: at.text_input, tuple: at.text_input}.get(option.kind, at.number_input)
            shown = widget(key=key).value
            if option.kind is tuple:
                shown = tuple(name.strip() for name in shown.split(",") if name.strip())
            assert shown == option.default, key
        others = {o.name for o in option_fields()} - {o.name for o in option_fields([CONFIGS[method]])}
        assert not [w for w in at.number_input if any(str(w.key).endswith(name) for name in others)], method
    at.number_input(key="rt_sft_epochs").set_value(1.5)
    _button(at, "Queue job").click()
    at.run()
    assert not at.exception
    with store.sessions() as session:
        job = session.scalars(select(RetuneJob)).one()
        assert (job.method, job.dataset_id, job.config) == ("sft", dpo_dataset + 2, SftConfig(epochs=1.5).as_json())


def test_a_dataset_a_retune_cannot_use_is_refused_or_listed_with_why_never_offered(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    at, usable = _admin_builds_a_dataset(store)
    _build(at, "pairwise")  # a single-output campaign has no A/B votes: nothing to store
    assert [e.value.replace("\\", "") for e in at.error] == [  # as shown: markdown escapes removed
        f"strategy pairwise made no training rows from the {ITEMS} ratings of campaign 1: {ITEMS} ratings judge one "
        f"output, not an A/B pair; from these ratings strategy correction makes {ITEMS}, kto makes {2 * ITEMS}, sft "
        f"makes {ITEMS} training rows. Nothing was stored."]
    with store.sessions() as session:
        assert [d.id for d in session.scalars(select(PreferenceDataset))] == [usable]

    # Stored anyway at the terminal: listed under the reason it cannot be retuned, never pre-selected.
    code, _, err = invoke_main(["data", "build", "--campaign", "1", "--strategy", "pairwise", "--allow-empty"],
                               monkeypatch, capsys)
    assert code == 0, err
    at.run()
    offered = at.selectbox(key="rt_dataset").options  # the page falls back to the first: the usable one
    assert len(offered) == 1 and offered[0].startswith(f"#{usable} ")
    reasons = [c.value.replace("\\", "") for c in at.caption if "has no training rows" in c.value]
    assert len(reasons) == 1 and reasons[0].startswith(f"dataset {usable + 1} (pairwise) has no training rows")
