"""Rating by keyboard alone in the real app (``evaltune ui`` in headless Debian chromium): a Likert score with an
unsupported sentence marked, an A/B choice and a skip, each stored as typed. Skipped without Chromium or
Playwright, except in CI."""

from __future__ import annotations

from collections.abc import Iterator
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
OUTPUT = "The capital is Capital 0. It was founded in 1925 by Zorg."


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Seeded]]:
    tmp_path = tmp_path_factory.mktemp("keyboard")
    db_url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = open_store(db_url)
    seeded = seed_store(store, items=4, outputs=[OUTPUT], users={"ann": "annotator"})
    with store.session_scope() as s:
        create_campaign(s, None, name="ab", run_ids=seeded.run_ids, overlap=1, pairwise=True)
        create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=1)
    store.close()
    with serve_app(db_url, tmp_path) as url:
        yield url, db_url, seeded


def _ratings(db_url: str) -> list[Rating]:
    store = open_store(db_url)
    with store.session_scope() as s:
        ratings = list(s.execute(select(Rating).order_by(Rating.id)).scalars())
        s.expunge_all()
    store.close()
    return ratings


def _press(page: Any, *keys: str) -> int:
    for key in keys:
        page.keyboard.press(key)
    return len(keys)


def test_a_whole_rating_an_ab_choice_and_a_skip_by_keyboard_alone(playwright_api: Any,
                                                                  app: tuple[str, str, Seeded]) -> None:
    from playwright.sync_api import expect

    url, db_url, _seeded = app
    browser = launch(playwright_api)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        log_in(page, expect, url, "ann", PASSWORD)
        settled(page, expect, "Rated by you: 0")
        expect(page.locator(".evaltune-rate [data-output=output]")).to_have_text(OUTPUT)
        # Likert 4, "y" puts the cursor on the first sentence, Space marks it, Enter submits: 4 keys, no click.
        keys = _press(page, "4", "y", "Space")
        expect(page.locator(".evaltune-rate mark")).to_have_text("The capital is Capital 0.")
        keys += _press(page, "Enter")
        settled(page, expect, "Rated by you: 1")
        assert keys == 4
        expect(page.locator(".evaltune-rate [data-output=output]")).not_to_have_text(OUTPUT)  # the next item
        _press(page, "s")  # skip it
        settled(page, expect, "Skipped")
        _press(page, "2", "n", "Enter")  # a score and no unsupported claims: 3 keys
        settled(page, expect, "Rated by you: 2")
        choose(page, "ab (#1, A/B)")
        settled(page, expect, "Output A")
        _press(page, "b", "Enter")  # 2 keys
        settled(page, expect, "Rated by you: 1")
    finally:
        browser.close()
    ratings = _ratings(db_url)
    marked = "The capital is Capital 0."
    assert [(r.likert, r.hallucination, r.spans, r.hallucinated_span) for r in ratings[:1]] == [
        (4, True, [[0, len(marked)]], marked)]
    assert [r.skipped for r in ratings] == [False, True, False, False]
    assert (ratings[2].likert, ratings[2].hallucination, ratings[2].spans) == (2, False, None)
    assert (ratings[3].choice, ratings[3].likert) == ("b", None)
