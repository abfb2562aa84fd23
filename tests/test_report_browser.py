"""The HTML report in real headless Chromium: plots drawn, hostile model output shown as text, never run.

Skipped where Chromium or Playwright is missing, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from evaltune.db import open_store
from evaltune.reports.compare import build_report
from evaltune.reports.render import render_report
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, playwright_api
from tests.fixtures.report_seed import HOSTILE, seed_runs

__all__ = ["playwright_api"]  # the module-scoped fixture, shared with the app's browser test

SCREENSHOT = Path(os.environ.get("EVALTUNE_REPORT_SCREENSHOT", "/tmp/evaltune_report.png"))


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.session_scope() as session:
        ids = seed_runs(session, 40)
        report = build_report(session, ids.baseline, ids.candidate)
    store.close()
    path = tmp_path / "report.html"
    path.write_text(render_report(report, "html"), encoding="utf-8")
    return path


def test_report_opens_with_plots_and_hostile_text_inert(playwright_api: Any, report_file: Path) -> None:
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report_file.as_uri())
        plots = page.locator("svg.plot")
        assert plots.count() == 2 + 3  # deltas, tag heatmap, one distribution per metric
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
        assert page.locator("svg.plot circle").count() == 3  # a dot per metric delta
        assert page.locator("svg.plot rect").count() > 20  # heatmap cells and histogram bars
        outputs = page.locator("pre.output")
        assert HOSTILE in [outputs.nth(i).inner_text() for i in range(outputs.count())]
        assert page.evaluate("window.__pwned === undefined") and page.title() != "pwned"
        assert page.locator("script").count() == 0 and not errors
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        browser.close()
