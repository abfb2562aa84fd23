"""End to end: the real app (``evaltune ui``) in headless Debian Chromium, driven by Playwright.

Log in, rate one blind A/B pair and two single outputs (one of them hostile HTML), watch the progress
change, then find the three ratings in the database. Skipped where Chromium or Playwright is missing,
except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evaltune.db import open_store
from evaltune.db.ratings import Rating
from evaltune.feedback_ui.campaigns import create_campaign
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, choose, playwright_api, serve_app, settled
from tests.fixtures.feedback_seed import HOSTILE, PASSWORD, Seeded, seed_store

__all__ = ["playwright_api"]  # the module-scoped fixture, from tests.fixtures.browser

pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, str, Seeded]]:
    """``evaltune ui`` on a free port over a seeded SQLite store; yields (base URL, store URL, seed)."""
    db_url = f"sqlite:///{tmp_path / 'e2e.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=4, outputs=[HOSTILE], users={"ann": "annotator"})
    with store.session_scope() as s:
        create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=1, guidelines="Be *strict*.")
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, overlap=1, pairwise=True)
    store.close()
    with serve_app(db_url, tmp_path) as url:
        yield url, db_url, seeded


def _rate_single(page: Any, expect: Any, rated_before: int) -> None:
    page.get_by_text("4 good", exact=True).click()  # a score click submits; no span marked: no hallucination
    settled(page, expect, f"Rated by you: {rated_before + 1}")


def test_log_in_rate_three_items_and_find_them_stored(playwright_api: Any, app: tuple[str, str, Seeded],
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base_url, db_url, seeded = app
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base_url, wait_until="domcontentloaded")
        page.get_by_label("Name", exact=True).fill("ann")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        # The newest campaign comes first: the blind A/B one.
        settled(page, expect, "Rated by you: 0")
        expect(page.get_by_text("Output A", exact=True)).to_be_visible()
        assert "model-1" not in page.content() and "model-2" not in page.content()
        page.get_by_text("B is better", exact=True).click()  # an A/B click submits
        settled(page, expect, "Rated by you: 1")
        choose(page, "single (#1)")
        settled(page, expect, "Model output")
        # The first single item is the hostile output: shown as text, never run or rendered.
        expect(page.get_by_text("<script>window.__pwned=1</script>", exact=False)).to_be_visible()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src='x']").count() == 0 and page.locator("a[href^='javascript']").count() == 0
        _rate_single(page, expect, 0)
        _rate_single(page, expect, 1)
        page.screenshot(path=str(tmp_path / "after.png"))
        assert page.evaluate("window.__pwned") is None
    finally:
        browser.close()
    store = open_store(db_url)
    with store.session_scope() as s:
        ratings = s.execute(select(Rating).order_by(Rating.id)).scalars().all()
        assert [r.user_id for r in ratings] == [seeded.users["ann"].id] * 3
        assert (ratings[0].choice, ratings[0].likert) == ("b", None)
        assert {ratings[0].side_a_generation_id, ratings[0].side_b_generation_id} == {
            seeded.generation_ids[seeded.run_ids[0]][0], seeded.generation_ids[seeded.run_ids[1]][0]}
        assert [(r.likert, r.hallucination, r.choice) for r in ratings[1:]] == [(4, False, None)] * 2
        assert ratings[1].generation_id == seeded.generation_ids[seeded.run_ids[0]][0]  # the hostile one
    store.close()
