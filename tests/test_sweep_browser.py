"""The sweep matrix in real headless Chromium: the HTML report (``evaltune report --sweep``) and the app's Sweeps
page (``evaltune ui``), over a sweep ``evaltune run`` made in which one cell answered with hostile markup
(``<script>``, ``<img onerror>``, a ``javascript:`` markdown link). It must show as text and never run.

Skipped where Chromium or Playwright is missing, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaltune.db import Store
from tests.conftest import Cli
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, WAIT_MS, playwright_api, serve_app
from tests.fixtures.feedback_seed import HOSTILE, PASSWORD, seed_users
from tests.test_sweep_matrix import MadeSweep, make_sweep

__all__ = ["playwright_api"]  # the module-scoped fixture, shared with the app's browser test

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(os.environ.get("EVALTUNE_SWEEP_SCREENSHOTS", "/tmp"))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def sweep(store: Store, cli: Cli, tmp_path: Path) -> MadeSweep:
    with store.session_scope() as session:
        seed_users(session, {"view": "viewer"})
    return make_sweep(cli, tmp_path)


def _pick(page: Any, box: int, option: str) -> None:
    """Choose ``option`` in the page's ``box``-th select box; a rerun ending under the click can close the list."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(10):
        page.get_by_test_id("stSelectbox").nth(box).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r}")


def _inert(page: Any) -> None:
    """Nothing the hostile output holds ran or became an element: no script, image or javascript: link."""
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("img[src='x']").count() == 0 and page.locator("a[href^='javascript']").count() == 0


def test_the_matrix_report_shows_hostile_output_as_text(playwright_api: Any, sweep: MadeSweep, cli: Cli,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "matrix.html"
    code, _out, err = cli("report", "--sweep", str(sweep.sweep_id), "--baseline", sweep.labels["polite@B"],
                          "--format", "html", "-o", str(path))
    assert code == 0, err
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        rows = page.locator("table.matrix tr")
        assert rows.count() == 1 + 4  # the header and a row per cell
        assert rows.nth(4).locator("td").first.inner_text() == sweep.labels["polite@B"] + " (baseline)"
        best = page.locator("table.matrix td.best")
        assert best.count() > 0 and all("★" in best.nth(i).inner_text() for i in range(best.count()))
        assert page.locator("table.deltas tr").count() == 1 + 3  # every cell but the baseline
        worse = page.locator("table.deltas td.worse")
        assert worse.count() > 0 and "worse" in worse.first.inner_text()
        outputs = page.locator("pre.output")
        assert HOSTILE in [outputs.nth(i).inner_text() for i in range(outputs.count())]
        _inert(page)
        assert page.locator("script").count() == 0 and not errors
        page.screenshot(path=str(SCREENSHOTS / "evaltune_sweep_report.png"), full_page=True)
    finally:
        browser.close()


@pytest.fixture
def app(sweep: MadeSweep, tmp_path: Path) -> Iterator[str]:
    """``evaltune ui`` on a free port over the store holding the sweep (EVALTUNE_DB_URL); yields its URL."""
    with serve_app(os.environ["EVALTUNE_DB_URL"], tmp_path) as url:
        yield url


def test_the_sweeps_page_shows_the_matrix_and_hostile_output_as_text(playwright_api: Any, sweep: MadeSweep,
                                                                     app: str) -> None:
    from playwright.sync_api import expect

    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{app}/?page=sweeps", wait_until="domcontentloaded")
        page.get_by_label("Name", exact=True).fill("view")
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_text("Items the cells disagree on")).to_be_visible(timeout=WAIT_MS)
        page.wait_for_selector(IDLE, timeout=WAIT_MS)
        frames = page.get_by_test_id("stDataFrame")
        expect(frames).to_have_count(3, timeout=WAIT_MS)  # the sweeps, the values, the deltas
        # A data grid draws on a canvas and keeps an accessible table of the cells it shows: read that.
        values, deltas = frames.nth(1), frames.nth(2)
        expect(values.get_by_test_id("glide-cell-0-0")).to_have_text(sweep.labels["plain@A"] + " (baseline)",
                                                                     timeout=WAIT_MS)
        expect(values.get_by_test_id("glide-cell-3-3")).to_have_text(re.compile(r"^1\.000 \[0\.758, 1\.000\] n=12 ★$"))
        expect(deltas.get_by_test_id("glide-cell-0-1")).to_have_text(sweep.labels["plain@B"])
        _pick(page, 1, sweep.labels["polite@B"])  # another baseline cell
        expect(deltas.get_by_test_id("glide-cell-0-0")).to_have_text(sweep.labels["plain@A"], timeout=WAIT_MS)
        expect(deltas.get_by_test_id("glide-cell-2-2")).to_have_text(re.compile(r"^-0\.750 \[.*worse$"))
        page.wait_for_selector(IDLE, timeout=WAIT_MS)
        # The first item the cells disagree on is q01, where plain@B answered with the hostile markup.
        expect(page.get_by_text("<script>window.__pwned=1</script>", exact=False)).to_be_visible(timeout=WAIT_MS)
        code_blocks = page.get_by_test_id("stCode")
        assert any(HOSTILE in code_blocks.nth(i).inner_text() for i in range(code_blocks.count()))
        _inert(page)
        page.screenshot(path=str(SCREENSHOTS / "evaltune_sweeps_page.png"), full_page=True)
    finally:
        browser.close()
