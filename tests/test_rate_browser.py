"""The Rate page in real Chromium: a span selected with the mouse is stored with the selected text's offsets after
one click; at 1280x800 the prompt, the output and the submit button are on screen together, and the next item
is in view after a submit; at 390x844 (a phone) no button label is cut. Screenshots go to the test's temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evaltune.db import open_store
from evaltune.db.ratings import Rating
from evaltune.feedback_ui.campaigns import create_campaign
from tests.fixtures.browser import choose, launch, log_in, playwright_api, serve_app, settled
from tests.fixtures.feedback_seed import PASSWORD, Seeded, seed_store

__all__ = ["playwright_api"]

pytestmark = pytest.mark.slow
OUTPUT = "Lima is the capital of Peru. 😀 It has 90 million people.\nIt was founded by Zorg in 1925."
MARKED = "90 million people"
# Labels whose text must be shown whole: every button of the form, and Streamlit's own labels on the page.
LABELS = ".evaltune-rate button, .evaltune-rate .label, [data-testid=stWidgetLabel] p, [data-testid=stCaptionContainer]"
CUT_LABELS = f"""() => [...document.querySelectorAll('{LABELS}')]
  .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Seeded, Path]]:
    tmp_path = tmp_path_factory.mktemp("rate")
    db_url = f"sqlite:///{tmp_path / 'rate.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=6, outputs=[OUTPUT], users={"ann": "annotator", "ann2": "annotator"})
    with store.session_scope() as s:
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, overlap=2, pairwise=True)
        create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=2)
    store.close()
    with serve_app(db_url, tmp_path) as url:
        yield url, db_url, seeded, tmp_path


def _select(page: Any, text: str) -> None:
    """Select ``text`` in the output as a mouse drag would (the Selection API), then release the mouse there."""
    page.evaluate("""(text) => {
        const box = document.querySelector('.evaltune-rate [data-output=output]');
        const node = box.firstChild, start = node.data.indexOf(text);
        const range = document.createRange();
        range.setStart(node, start); range.setEnd(node, start + text.length);
        getSelection().removeAllRanges(); getSelection().addRange(range);
        box.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    }""", text)


def _inside(box: dict[str, float] | None, width: int, height: int) -> bool:
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= height and box["x"] >= 0 \
        and box["x"] + box["width"] <= width


def test_a_span_selected_with_the_mouse_is_stored_with_its_offsets_after_one_click(
        playwright_api: Any, app: tuple[str, str, Seeded, Path]) -> None:
    from playwright.sync_api import expect

    url, db_url, _seeded, tmp_path = app
    browser = launch(playwright_api)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        log_in(page, expect, url, "ann", PASSWORD)
        settled(page, expect, "Rated by you: 0")
        for name in ("Prompt", "Submit rating"):
            assert _inside(page.get_by_text(name, exact=True).first.bounding_box(), 1280, 800), name
        assert _inside(page.locator(".evaltune-rate [data-output=output]").bounding_box(), 1280, 800)
        assert page.evaluate(CUT_LABELS) == []
        page.screenshot(path=str(tmp_path / "rate-1280x800.png"))
        _select(page, MARKED)
        expect(page.locator(".evaltune-rate mark")).to_have_text(MARKED)
        page.get_by_text("2 poor", exact=True).click()  # the one click: a score submits
        settled(page, expect, "Rated by you: 1")
        # The next item is in view: its output and the prompt, without scrolling back up.
        expect(page.locator(".evaltune-rate [data-output=output]")).not_to_have_text(OUTPUT)
        assert _inside(page.get_by_text("Prompt", exact=True).first.bounding_box(), 1280, 800)
        page.screenshot(path=str(tmp_path / "rate-after-submit.png"))
    finally:
        browser.close()
    store = open_store(db_url)
    with store.session_scope() as s:
        rating = s.execute(select(Rating)).scalar_one()
        start = OUTPUT.index(MARKED)  # Python characters: the emoji before it counts once, not twice
        assert (rating.likert, rating.hallucination, rating.spans) == (2, True, [[start, start + len(MARKED)]])
        assert rating.hallucinated_span == MARKED
    store.close()


def test_no_label_is_cut_on_a_phone_and_the_ab_buttons_read_in_full(
        playwright_api: Any, app: tuple[str, str, Seeded, Path]) -> None:
    from playwright.sync_api import expect

    url, db_url, _seeded, tmp_path = app
    browser = launch(playwright_api)
    try:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        log_in(page, expect, url, "ann2", PASSWORD)
        settled(page, expect, "Rated by you: 0")
        assert page.evaluate(CUT_LABELS) == []
        page.screenshot(path=str(tmp_path / "rate-390x844.png"), full_page=True)
        # The optional fields, filled on the phone, then a score.
        page.get_by_text("More: thumbs, flags", exact=False).click()
        page.get_by_label("Thumbs down").check()
        page.get_by_label("Unsafe or harmful").check()
        page.get_by_label("Corrected answer").fill("Capital 0.")
        page.get_by_label("Comment").fill("<b>not bold</b>")
        page.get_by_text("1 very poor", exact=True).click()
        settled(page, expect, "Rated by you: 1")
        choose(page, "ab (#1, A/B)")
        settled(page, expect, "Output A")
        expect(page.get_by_role("button", name="Submit choice")).to_be_visible()
        assert page.evaluate(CUT_LABELS) == []
        page.screenshot(path=str(tmp_path / "ab-390x844.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})
        assert page.evaluate(CUT_LABELS) == []
        page.screenshot(path=str(tmp_path / "ab-1280x800.png"))
    finally:
        browser.close()
    store = open_store(db_url)
    with store.session_scope() as s:
        rating = s.execute(select(Rating).where(Rating.user_id == app[2].users["ann2"].id)).scalar_one()
        assert (rating.likert, rating.thumbs, rating.bias, rating.unsafe, rating.correction, rating.comment,
                rating.hallucination) == (1, False, False, True, "Capital 0.", "<b>not bold</b>", False)
    store.close()
