"""Every page and every action against every role, and what an annotator can read.

Roles: anonymous (not signed in), viewer, annotator, admin. A page is opened through the app's own routing
(``?page=``) and through its guard directly; an action is called as a function, so the check is shown to live
in the function itself, not in hiding a button. An AST scan keeps the action list complete.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from evaltune.db import Store, open_store
from evaltune.db.ratings import CampaignAnnotator
from evaltune.db.training import PreferenceDataset
from evaltune.feedback_ui import adjudication, auth, campaigns, queue, rating_task, retune_actions
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import Account, PermissionDenied
from evaltune.feedback_ui.screens import PAGES, Page
from evaltune.retune import jobs
from evaltune.retune.config import SftConfig
from evaltune.retune.strategies import StrategyParams
from tests.fixtures.feedback_seed import Seeded, seed_store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "feedback_ui" / "app.py")
TIMEOUT = 60
ROLES = [None, "viewer", "annotator", "admin"]  # None: not signed in
USER_OF_ROLE = {"viewer": "view", "annotator": "ann1", "admin": "admin"}
GOOD = SingleAnswer(likert=4, hallucination=False, comment="ann2 private note")


def _may(required: tuple[str, ...], role: str | None) -> bool:
    return role is not None and (role == "admin" or role in required)


@dataclass
class World:
    store: Store
    seeded: Seeded
    open_campaign: int  # open to every annotator; ann1 and ann2 have rated in it
    private_campaign: int  # given to ann2 only
    ann1_assignment: int  # ann1's open reservation in the open campaign
    ann2_assignment: int  # ann2's open reservation in the private campaign
    ann2_reservation: queue.Reservation
    item: int  # a campaign item with ratings
    dataset: int
    job: int

    def account(self, role: str | None) -> Account | None:
        return None if role is None else self.seeded.users[USER_OF_ROLE[role]]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    store = open_store(url)
    seeded = seed_store(store, items=4)
    users = seeded.users
    with store.session_scope() as s:
        shared = campaigns.create_campaign(s, None, name="shared", run_ids=seeded.run_ids[:1], overlap=2).id
        private = campaigns.create_campaign(s, None, name="only-for-ann2", run_ids=seeded.run_ids[1:],
                                            guidelines="PRIVATE GUIDELINES", annotators=[users["ann2"].id]).id
    for name in ("ann1", "ann2"):
        with store.session_scope() as s:
            held = queue.claim_next(s, users[name], shared)
            assert held is not None
            queue.submit_rating(s, users[name], held.assignment_id,
                                SingleAnswer(likert=2 if name == "ann1" else 5, hallucination=False,
                                             comment=f"{name} private note"))
            item = held.campaign_item_id
    with store.session_scope() as s:
        mine = queue.claim_next(s, users["ann1"], shared)
        theirs = queue.claim_next(s, users["ann2"], private)
        assert mine is not None and theirs is not None
        dataset = PreferenceDataset(name="d", strategy="sft", campaign_id=shared, counts={"train": 0})
        s.add(dataset)
        s.flush()
        # A queued job to cancel. Not through queue_job_as: that refuses a dataset with no rows to train on.
        job = jobs.enqueue(s, dataset_id=dataset.id, base_model_id=1, config=SftConfig()).id
        dataset_id = dataset.id
    yield World(store, seeded, shared, private, mine.assignment_id, theirs.assignment_id, theirs, item, dataset_id,
                job)
    store.close()


# ---- pages -------------------------------------------------------------------------------------------------


def _open_page(world: World, slug: str, role: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    account = world.account(role)
    if account is not None:
        at.session_state["user_id"] = account.id  # signed in (the log-in form is tested elsewhere)
    at.query_params["page"] = slug
    return at.run()


def _guarded_page(slug: str) -> None:
    """A script that renders one page behind its guard, as app.py does, whatever the sidebar allows."""
    from evaltune.feedback_ui import app_state
    from evaltune.feedback_ui.screens import PAGES

    page = next(p for p in PAGES if p.slug == slug)
    page.render(app_state.guard(*page.roles))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.slug)
def test_every_page_refuses_the_roles_without_the_right(world: World, page: Page) -> None:
    for role in ROLES:
        at = _open_page(world, page.slug, role)
        assert not at.exception, (role, at.exception)
        headers = [h.value for h in at.header]
        if _may(page.roles, role):
            assert headers == [page.title], role
            continue
        assert page.title not in headers, role  # routed to an allowed page instead (or the log-in form)
        if role is None:
            assert [t.label for t in at.text_input] == ["Name", "Password"] and not at.sidebar.radio
        else:
            assert page.slug not in at.sidebar.radio(key="nav").options
        direct = AppTest.from_function(_guarded_page, args=(page.slug,), default_timeout=TIMEOUT)
        account = world.account(role)
        if account is not None:
            direct.session_state["user_id"] = account.id
        direct.run()
        assert not at.exception
        assert next(e.value for e in direct.error).startswith("Not allowed"), role
        assert not direct.header and not direct.dataframe and not direct.button


# ---- actions -----------------------------------------------------------------------------------------------

Call = Callable[[Session, Account | None, World], Any]
# Each action the app can take, the roles it needs, and how to call it. create_campaign with actor None is the
# trusted command line; the app always passes the signed-in account.
ACTIONS: dict[str, tuple[tuple[str, ...], Call]] = {
    "auth.add_user": (("admin",), lambda s, a, w: auth.add_user(s, a, "newcomer", "viewer", "long enough pw")),
    "auth.set_active": (("admin",), lambda s, a, w: auth.set_active(s, a, w.seeded.users["ann2"].id, False)),
    "auth.change_role": (("admin",), lambda s, a, w: auth.change_role(s, a, w.seeded.users["ann2"].id, "viewer")),
    "campaigns.create_campaign": (("admin",), lambda s, a, w: campaigns.create_campaign(
        s, a, name="new", run_ids=w.seeded.run_ids[:1])),
    "campaigns.set_status": (("admin",), lambda s, a, w: campaigns.set_status(s, a, w.open_campaign, "closed")),
    "campaigns.campaigns_for": (("annotator",), lambda s, a, w: campaigns.campaigns_for(s, a)),
    "queue.claim_next": (("annotator",), lambda s, a, w: queue.claim_next(s, a, w.open_campaign)),
    "queue.submit_rating": (("annotator",), lambda s, a, w: queue.submit_rating(s, a, w.ann1_assignment, GOOD)),
    "queue.skip": (("annotator",), lambda s, a, w: queue.skip(s, a, w.ann1_assignment)),
    "adjudication.item_ratings": (("admin",), lambda s, a, w: adjudication.item_ratings(s, a, w.item)),
    "adjudication.adjudicate": (("admin",), lambda s, a, w: adjudication.adjudicate(s, a, w.item, {"likert": 3})),
    "retune_actions.build_dataset_as": (("admin",), lambda s, a, w: retune_actions.build_dataset_as(
        s, a, w.open_campaign, "sft", StrategyParams())),
    "retune_actions.queue_job_as": (("admin",), lambda s, a, w: retune_actions.queue_job_as(
        s, a, w.dataset, 1, SftConfig())),
    "retune_actions.cancel_job_as": (("admin",), lambda s, a, w: retune_actions.cancel_job_as(s, a, w.job)),
}
# Functions taking an account that check ownership rather than a role (each has its own test below).
OWNERSHIP_CHECKED = {"campaigns.may_rate", "rating_task.load_task"}
NOT_ACTIONS = {"auth.require_role"}  # the check itself


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_checks_the_role_in_the_function(world: World, name: str) -> None:
    required, call = ACTIONS[name]
    for role in ROLES:
        if role is None and name == "campaigns.create_campaign":
            continue
        with world.store.sessions() as session:  # never committed: each role starts from the same store
            try:
                call(session, world.account(role), world)
            except PermissionDenied:
                assert not _may(required, role), f"{name} refused a {role}"
            except Exception as error:  # a domain error (wrong state, not theirs) is not a permission leak
                assert _may(required, role), f"{name} let a {role} through to {type(error).__name__}: {error}"
            else:
                assert _may(required, role), f"{name} let a {role} act"
            session.rollback()


def _functions_taking_an_account() -> set[str]:
    found = set()
    for path in sorted((ROOT / "feedback_ui").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                annotations = [ast.unparse(arg.annotation) for arg in node.args.args + node.args.kwonlyargs
                               if arg.annotation is not None]
                if any("Account" in a for a in annotations):
                    found.add(f"{path.stem}.{node.name}")
    return found


def test_the_action_list_is_complete() -> None:
    """A new function that acts for an account must be added to ACTIONS (and so get a role test)."""
    assert _functions_taking_an_account() == set(ACTIONS) | OWNERSHIP_CHECKED | NOT_ACTIONS


def test_pages_write_only_through_checked_actions() -> None:
    """Every ``app_state.transaction(lambda s: f(...))`` in a page calls a function from ACTIONS (or the log-in)."""
    allowed = {name.split(".")[1] for name in ACTIONS} | {"log_in"}
    for path in sorted((ROOT / "feedback_ui" / "screens").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "app_state.transaction":
                work = node.args[0]
                assert isinstance(work, ast.Lambda) and isinstance(work.body, ast.Call), (path.name, node.lineno)
                called = ast.unparse(work.body.func).split(".")[-1]
                assert called in allowed, f"{path.name}:{node.lineno} writes through {called}, which checks no role"


# ---- what an annotator can read ----------------------------------------------------------------------------


def test_annotators_see_only_campaigns_given_to_them(world: World) -> None:
    users = world.seeded.users
    with world.store.sessions() as s:
        assert [c.name for c in campaigns.campaigns_for(s, users["ann1"])] == ["shared"]
        assert [c.name for c in campaigns.campaigns_for(s, users["ann2"])] == ["only-for-ann2", "shared"]
        assert [c.name for c in campaigns.campaigns_for(s, users["admin"])] == ["only-for-ann2", "shared"]
        assert not campaigns.may_rate(s, users["ann1"], world.private_campaign)
        assert not campaigns.may_rate(s, users["view"], world.open_campaign)
        with pytest.raises(queue.QueueError, match="not given to you"):
            queue.claim_next(s, users["ann1"], world.private_campaign)
        s.rollback()


def test_annotators_cannot_use_or_read_another_annotators_reservation(world: World) -> None:
    users = world.seeded.users
    with world.store.sessions() as s:
        with pytest.raises(PermissionDenied):
            rating_task.load_task(s, users["ann1"], world.ann2_reservation)
        assert rating_task.load_task(s, users["ann2"], world.ann2_reservation).guidelines == "PRIVATE GUIDELINES"
        with pytest.raises(queue.QueueError, match="no longer reserved for you"):
            queue.submit_rating(s, users["ann1"], world.ann2_assignment, GOOD)
        s.rollback()
    with world.store.sessions() as s:  # taken off the campaign after reserving: the rating is refused
        s.execute(delete(CampaignAnnotator).where(CampaignAnnotator.campaign_id == world.private_campaign))
        s.add(CampaignAnnotator(campaign_id=world.private_campaign, user_id=users["admin"].id))
        with pytest.raises(queue.QueueError, match="not given to you"):
            queue.submit_rating(s, users["ann2"], world.ann2_assignment, GOOD)
        s.rollback()


def _everything_shown(at: AppTest) -> str:
    texts = [str(e.value) for kind in (at.markdown, at.caption, at.title, at.header, at.subheader, at.error,
                                       at.success, at.info, at.warning, at.code) for e in kind]
    texts += [str(df.value.to_dict()) for df in at.dataframe]
    for box in at.selectbox:
        texts += [str(option) for option in box.options]
    return "\n".join(texts)


def test_an_annotator_sees_no_other_annotators_ratings_or_campaigns_on_any_page(world: World) -> None:
    for page in PAGES:
        at = _open_page(world, page.slug, "annotator")
        shown = _everything_shown(at)
        assert "ann1 private note" not in shown  # not even their own rating is echoed back
        assert "ann2" not in shown and "only-for-ann2" not in shown and "PRIVATE GUIDELINES" not in shown, page.slug
    at = _open_page(world, "adjudicate", "admin")  # the data is there, for those allowed to see it
    at.selectbox(key="adj_campaign").set_value(world.open_campaign).run()
    shown = _everything_shown(at)
    assert "ann2 private note" in shown and "only-for-ann2" in shown
