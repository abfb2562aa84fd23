"""Every page of the app in real Chromium at a laptop's 1280x800 and a phone's 390x844, opened by the role that
uses it: no button, radio, tab or widget label is cut (drawn wider than its box, or ending in an ellipsis that
our source does not write), and a screenshot of each is saved for a person to look at.

Screenshots go to the test's temporary folder and, when ``EVALTUNE_SCREENSHOTS=DIR`` is set, to DIR as well.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaltune.db import open_store
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from tests.fixtures.browser import IDLE, WAIT_MS, choose, launch, playwright_api, serve_app
from tests.fixtures.feedback_seed import PASSWORD, rate_campaign, seed_store

__all__ = ["playwright_api"]  # the module-scoped fixture, from tests.fixtures.browser

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).resolve().parent.parent / "feedback_ui"
VIEWPORTS = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# (file name, page slug, who opens it, the heading the page draws)
PAGES = [
    ("rate_single", "rate", "ann3", "Rate"),
    ("rate_ab", "rate", "ann3", "Rate"),
    ("progress", "progress", "view", "Progress"),
    ("agreement", "agreement", "view", "Agreement"),
    ("runs", "runs", "view", "Runs"),
    ("compare", "compare", "view", "Compare"),
    ("sweeps", "sweeps", "view", "Sweeps"),
    ("adjudicate", "adjudicate", "admin", "Adjudicate"),
    ("campaigns", "campaigns", "admin", "Campaigns"),
    ("retune", "retune", "admin", "Retune"),
    ("users", "users", "admin", "Users"),
]
# What a person reads as a label: buttons, tabs, radio and checkbox options, every widget's own label.
LABELS_CUT = """() => {
  const selector = ['button', '[role="tab"]', '[role="radiogroup"] label', '[data-testid="stCheckbox"] label',
                    '[data-testid="stWidgetLabel"]'].join(',');
  const cut = [];
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    const text = (el.innerText || '').trim();
    if (box.width === 0 || box.height === 0 || !text) continue;  // not drawn (a closed sidebar's inner parts)
    // A box that clips text it holds (Streamlit cuts a label with overflow hidden and an ellipsis); boxes
    // without text (the visually hidden 1-px input wrappers) and boxes that let text spill visibly are not cuts.
    const clips = n => n.clientWidth > 2 && n.scrollWidth > n.clientWidth + 1 && (n.innerText || '').trim()
      && getComputedStyle(n).overflowX !== 'visible';
    const wider = [el, ...el.querySelectorAll('*')].some(clips);
    if (wider || text.endsWith('…')) cut.push({text, wider});
  }
  return cut;
}"""


def _ours(text: str) -> bool:
    """Whether an ellipsis-ending label is written so in our own source (then it is not a cut)."""
    return any(text in path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``evaltune ui`` over a store holding something for every page: two runs, a single-output campaign with
    disagreeing ratings (one with marked spans), a blind A/B campaign, and users of each role."""
    folder = tmp_path_factory.mktemp("screens")
    db_url = f"sqlite:///{folder / 'store.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=6, users={"admin": "admin", "ann1": "annotator", "ann2": "annotator",
                                               "ann3": "annotator", "view": "viewer"})
    with store.session_scope() as s:
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, overlap=2, pairwise=True)
        single = create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=3,
                                 guidelines="Rate how well the output answers the question.").id

    def marks_the_capital(task: Task) -> SingleAnswer:
        output = task.outputs[0]
        start = output.index("Capital")
        return SingleAnswer.marked(output, 1, [(start, len(output) - 1)], comment="there is no such capital")

    with store.session_scope() as s:
        rate_campaign(s, seeded.users["ann1"], single, lambda task: SingleAnswer(likert=5, hallucination=False))
        rate_campaign(s, seeded.users["ann2"], single, marks_the_capital)
    store.close()
    with serve_app(db_url, folder, env={"EVALTUNE_HOME": str(folder)}) as url:
        yield url


def _idle(page: Any) -> None:
    page.wait_for_timeout(300)  # let a rerun that a click or load triggered begin before waiting for its end
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    page.wait_for_timeout(300)  # and let the browser draw what the finished run sent (no half-drawn widgets)


def _open(page: Any, expect: Any, url: str, slug: str, user: str, heading: str) -> None:
    """Open ``?page=slug``; log in as ``user`` when the browser is not signed in (a reload may keep it)."""
    page.goto(f"{url}/?page={slug}")
    login = page.get_by_role("button", name="Log in")
    target = page.get_by_role("heading", name=heading, exact=True)
    expect(login.or_(target).first).to_be_visible(timeout=WAIT_MS)
    if login.is_visible():
        page.get_by_label("Name", exact=True).fill(user)
        page.locator("input[type=password]").fill(PASSWORD)
        login.click()
    expect(target).to_be_visible(timeout=WAIT_MS)
    _idle(page)


def _check_and_shoot(page: Any, name: str, out: Path, cuts: dict[str, list[dict[str, Any]]]) -> None:
    page.screenshot(path=str(out / f"{name}.png"))
    found = [cut for cut in page.evaluate(LABELS_CUT) if cut["wider"] or not _ours(cut["text"])]
    if found:
        cuts[name] = [cut["text"] for cut in found]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_its_labels_and_is_captured(playwright_api: Any, app: str, viewport: str,
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    out = tmp_path / viewport
    out.mkdir()
    cuts: dict[str, list[dict[str, Any]]] = {}
    browser = launch(playwright_api)
    try:
        contexts: dict[str, Any] = {}
        for number, (name, slug, user, heading) in enumerate(PAGES):
            if user not in contexts:
                contexts[user] = browser.new_context(viewport=VIEWPORTS[viewport]).new_page()
            page = contexts[user]
            if number == 0:  # the log-in form, before anyone signs in
                page.goto(f"{app}/?page={slug}")
                expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=WAIT_MS)
                _idle(page)
                _check_and_shoot(page, "login", out, cuts)
            _open(page, expect, app, slug, user, heading)
            if name == "rate_ab":
                choose(page, "ab (#1, A/B)")
                _idle(page)
            _check_and_shoot(page, name, out, cuts)
    finally:
        browser.close()
        wanted = os.environ.get("EVALTUNE_SCREENSHOTS")
        if wanted:
            shutil.copytree(out, Path(wanted) / viewport, dirs_exist_ok=True)
    assert sorted(path.stem for path in out.glob("*.png")) == sorted(["login", *(name for name, *_ in PAGES)])
    assert not cuts, f"labels cut at {viewport} {VIEWPORTS[viewport]}: {cuts}"
