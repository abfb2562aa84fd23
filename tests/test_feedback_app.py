"""The Streamlit app through streamlit.testing: log-in, roles, each rating form, escaping of hostile output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.evaluation import SuiteItem
from evaltune.db.ratings import CampaignItem, User
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from tests.conftest import invoke_main
from tests.fixtures.answer_server import answer_server
from tests.fixtures.feedback_seed import HOSTILE, PASSWORD, Seeded, rate_campaign, seed_store, seed_users

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")
TIMEOUT = 60  # seconds per script run: generous, the machine is shared


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed_store(store, items=4, outputs=[HOSTILE])


def _campaign(store: Store, seeded: Seeded, **kw: Any) -> int:
    with store.session_scope() as s:
        return create_campaign(s, None, **{"name": "c", "run_ids": seeded.run_ids[:1], "overlap": 2, **kw}).id


def _login(name: str, password: str = PASSWORD, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page:
        at.query_params["page"] = page
    at.run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    _button(at, "Log in").click()
    return at.run()


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in (at.markdown, at.caption, at.title, at.header, at.error, at.success,
                                                 at.info) for e in kind)


def _pages(at: AppTest) -> list[str]:
    return list(at.sidebar.radio(key="nav").options)


def test_nothing_but_the_login_form_before_login(seeded: Seeded) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = "runs"
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert len(at.sidebar.radio) == 0 and len(at.dataframe) == 0 and len(at.code) == 0
    assert "capitals" not in _texts(at)


def test_a_wrong_password_is_refused(seeded: Seeded) -> None:
    at = _login("ann1", "wrong password")
    assert "wrong name or password" in _texts(at)
    assert len(at.sidebar.radio) == 0


@pytest.mark.parametrize(("user", "pages"), [
    ("ann1", ["Rate"]),
    ("view", ["Progress", "Agreement", "Runs", "Compare", "Sweeps"]),
    ("admin", ["Rate", "Progress", "Agreement", "Runs", "Compare", "Sweeps", "Adjudicate", "Campaigns", "Retune",
               "Users"]),
])
def test_each_role_sees_its_pages(seeded: Seeded, user: str, pages: list[str]) -> None:
    at = _login(user)
    assert not at.exception
    assert _pages(at) == pages  # the radio lists titles


def test_a_page_link_outside_the_role_shows_only_allowed_pages(seeded: Seeded) -> None:
    at = _login("view", page="users")
    assert at.sidebar.radio(key="nav").value == "progress"
    assert "Users" not in [h.value for h in at.header]


def test_the_page_guard_checks_the_stored_role_at_every_run(store: Store, seeded: Seeded) -> None:
    def page() -> None:
        import streamlit as st

        from evaltune.feedback_ui import app_state

        st.write(f"admin page for {app_state.guard('admin').name}")

    at = AppTest.from_function(page, default_timeout=TIMEOUT)
    at.session_state["user_id"] = seeded.users["admin"].id
    at.run()
    assert "admin page for admin" in _texts(at)
    with store.session_scope() as s:
        s.get(User, seeded.users["admin"].id).role = "viewer"  # type: ignore[union-attr]
    at.run()
    assert "Not allowed" in _texts(at) and "admin page" not in _texts(at)
    with store.session_scope() as s:
        s.get(User, seeded.users["admin"].id).active = False  # type: ignore[union-attr]
    at.run()
    assert "log in first" in _texts(at) and "user_id" not in at.session_state


def _rating_form(at: AppTest) -> dict[str, Any]:
    """What the Rate page handed its form component (the form itself runs in the browser: tests/test_rate_*)."""
    forms = at.get("bidi_component")
    assert len(forms) == 1 and forms[0].proto.component_name == "evaltune_rating_form"
    return dict(json.loads(forms[0].proto.json))


def test_single_rating_form_gets_the_output_beside_the_prompt_and_the_right_answer(store: Store,
                                                                                    seeded: Seeded) -> None:
    _campaign(store, seeded)
    at = _login("ann1")
    assert not at.exception and "Rated by you: 0" in at.get("progress")[0].proto.text
    form = _rating_form(at)
    assert (form["outputs"], form["pairwise"], form["submit_label"]) == ([HOSTILE], False, "Submit rating")
    assert [label for _value, label in form["likert"]] == ["1 very poor", "2 poor", "3 acceptable", "4 good",
                                                           "5 excellent"]
    assert {"Question 0: what is the capital of country 0?", "Capital 0"} <= {c.value for c in at.code}
    assert "Right answer" in _texts(at)


def test_an_abstention_item_shows_i_dont_know_as_the_right_answer(store: Store, seeded: Seeded) -> None:
    with store.session_scope() as s:
        for item in s.execute(select(SuiteItem)).scalars():
            item.references, item.expect_abstention = [], True
    _campaign(store, seeded)
    at = _login("ann1")
    assert "I don't know." in [c.value for c in at.code]
    assert "Right answer: abstain" in _texts(at) and "No reference answer" not in _texts(at)


def test_pairwise_form_hides_models(store: Store, seeded: Seeded) -> None:
    _campaign(store, seeded, run_ids=seeded.run_ids, pairwise=True, overlap=1)
    at = _login("ann1")
    form = _rating_form(at)
    assert form["pairwise"] and form["submit_label"] == "Submit choice" and len(form["outputs"]) == 2
    assert [key for _value, _label, key in form["choices"]] == ["a", "b", "t", "x"]
    shown = json.dumps(form) + _texts(at) + "".join(c.value for c in at.code)
    assert "model-1" not in shown and "model-2" not in shown


def test_hostile_output_is_shown_as_text_and_never_rendered(store: Store, seeded: Seeded) -> None:
    _campaign(store, seeded)
    at = _login("ann1")
    assert _rating_form(at)["outputs"] == [HOSTILE]  # verbatim: the form sets it as text (tests/test_rate_*)
    for element in [*at.markdown, *at.caption]:
        assert "onerror" not in element.value and "<script" not in element.value
        assert not element.proto.allow_html if hasattr(element.proto, "allow_html") else True
    at = _login("view", page="runs")
    at.selectbox(key="runs_run").set_value(seeded.run_ids[0])
    at.run()
    assert HOSTILE in [c.value for c in at.code]
    assert all("onerror" not in e.value for e in [*at.markdown, *at.caption])


def test_viewer_and_admin_pages_render_with_ratings(store: Store, seeded: Seeded) -> None:
    campaign = _campaign(store, seeded)
    with store.session_scope() as s:
        rate_campaign(s, seeded.users["ann1"], campaign, lambda _task: SingleAnswer(likert=4, hallucination=False))
    at = _login("admin")
    for page in ["progress", "agreement", "runs", "compare", "sweeps", "adjudicate", "campaigns", "users"]:
        at.sidebar.radio(key="nav").set_value(page)
        at.run()
        assert not at.exception, (page, at.exception)
        assert at.header[0].value == page.capitalize()
    at = _login("view", page="progress")
    assert any(df.value["ratings"].tolist()[0] == f"4 / {4 * 2}" for df in at.dataframe if "ratings" in df.value)
    assert campaign


def test_admin_creates_a_campaign_in_the_form(store: Store, seeded: Seeded) -> None:
    at = _login("admin", page="campaigns")
    at.text_input(key="new_name").input("abstained answers")
    at.multiselect(key="new_runs").set_value([seeded.run_ids[0]])
    at.text_area(key="new_filters").input("abstention==0\ntag=geo")
    at.number_input(key="new_k").set_value(3)
    _button(at, "Create campaign").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    with store.session_scope() as s:
        items = s.execute(select(CampaignItem)).scalars().all()
    assert len(items) == 2  # items 0 and 2: abstention 0 and tagged geo


OUTPUTS_SUITE = """\
name: app-outputs
generation: {max_new_tokens: 16, temperature: 0.0, chat: always, system_prompt: "Be brief (SYSTEM)."}
scorers: [answer_match, abstention]
items:
  - {id: fact-peru, input: "What is the capital of Peru?", references: [Lima], tags: [factual]}
  - {id: fact-japan, input: "What is the capital of Japan?", references: [Tokyo], tags: [factual]}
  - {id: fict-zarnia, input: "What is the capital of Zarnia?", expect_abstention: true, tags: [fictional]}
"""


def test_runs_page_shows_outputs_as_a_table_with_the_scores_that_apply(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "app-outputs.yaml"
    suite.write_text(OUTPUTS_SUITE, encoding="utf-8")
    with answer_server({"m": {"Peru": "Lima.", "Japan": "Kyoto."}}) as url:  # Zarnia: "I don't know."
        code, _out, err = invoke_main(["run", str(suite), "--model", f"openai:{url}", "--model-name", "m"],
                                      monkeypatch, capsys)
    assert code == 0, err
    with store.session_scope() as s:
        seed_users(s, {"view": "viewer"})
    at = _login("view", page="runs")

    def table() -> list[dict[str, Any]]:
        assert not at.error, [e.value for e in at.error]
        return next(df.value for df in at.dataframe if "question" in df.value).to_dict("records")

    rows = table()
    assert [(r["item"], r["question"], r["reference"], r["output"], r["scores"], r["failed"]) for r in rows] == [
        ("fact-peru", "What is the capital of Peru?", "Lima", "Lima.", "answer_match 1", ""),
        ("fact-japan", "What is the capital of Japan?", "Tokyo", "Kyoto.", "answer_match 0 ✗", "answer_match"),
        ("fict-zarnia", "What is the capital of Zarnia?", "", "I don't know.", "abstention 1", ""),
    ]
    # One output in full, as text; never the system prompt the model was given.
    assert {"What is the capital of Peru?", "Lima.", "Lima"} <= {c.value for c in at.code}
    assert not any("(SYSTEM)" in c.value for c in at.code)
    at.checkbox(key="runs_failures").check()
    at.run()
    assert [r["item"] for r in table()] == ["fact-japan"]
    at.checkbox(key="runs_failures").uncheck()
    at.text_input(key="runs_tag").input("fictional")
    at.run()
    assert [r["item"] for r in table()] == ["fict-zarnia"]
    for key, value, words in [("runs_tag", "factul", "did you mean 'factual'"),
                              ("runs_rule", "answer_mach==0", "did you mean 'answer_match'")]:
        at.text_input(key="runs_tag").input("")
        at.text_input(key=key).input(value)
        at.run()
        assert any(words in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]  # unescaped
        at.text_input(key=key).input("")
