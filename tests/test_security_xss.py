"""A corpus of XSS payloads (tests/data/xss_payloads.txt) in every text field a user or a model controls, shown
by every page of the real app and by the HTML report in headless Chromium.

For each page: no dialog opened, ``window.__pwned`` (which every payload sets if it runs) never set in any
frame, no element or attribute a payload would create, and the payload text visible literally where the page
shows it as text. Campaign guidelines are markdown by design (written by an admin): there the payloads must
stay inert, not literal. Skipped where Chromium or Playwright is missing, except in CI.
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evaltune.db import Store, open_store, queries
from evaltune.db.evaluation import Generation, Run, RunMetric, Score
from evaltune.db.ratings import User
from evaltune.db.training import PreferenceDataset
from evaltune.feedback_ui.adjudication import adjudicate
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.feedback_ui.safe_text import inline, safe_markdown
from evaltune.metrics.stats.intervals import mean_with_ci
from evaltune.reports.compare import build_report
from evaltune.reports.markdown import FLIPS_SHOWN
from evaltune.reports.render import render_report
from evaltune.retune import jobs
from evaltune.retune.config import SftConfig
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, WAIT_MS, playwright_api, wait_healthy
from tests.fixtures.feedback_seed import PASSWORD, password_hash
from tests.fixtures.postgres import _free_port

__all__ = ["playwright_api"]

PAYLOADS = [line for line in (Path(__file__).parent / "data" / "xss_payloads.txt").read_text("utf-8").splitlines()
            if line.strip()]
ALL = "\n".join(PAYLOADS)
ADMIN = PAYLOADS[1] + " admin"  # the signed-in user's name is shown on every page
SUITE, MODEL_A, MODEL_B, SCORER = PAYLOADS[0], PAYLOADS[1], PAYLOADS[2], PAYLOADS[3]
MAIN_CAMPAIGN = "main " + PAYLOADS[8]

# Run in every frame: what a payload would leave behind if the browser had parsed it as markup.
FIND_INJECTED = """() => {
  const bad = [];
  const urlish = ['src', 'href', 'action', 'formaction', 'data', 'xlink:href', 'content', 'style', 'srcdoc'];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase(), value = attr.value.toLowerCase();
      const streamlitFrame = el.tagName === 'IFRAME' && name === 'srcdoc' && el.dataset.testid === 'stIFrame';
      if (name.startsWith('on')) bad.push(`${el.tagName} ${name}`);
      else if (urlish.includes(name) && !streamlitFrame && (value.includes('javascript') || value.includes('__pwned')
               || value.startsWith('data:text/html') || value.includes('expression(')))
        bad.push(`${el.tagName} ${name}=${attr.value.slice(0, 60)}`);
    }
    if (el.tagName === 'SCRIPT' && el.textContent.includes('__pwned')) bad.push('SCRIPT from a payload');
  }
  for (const sel of ['img[src="x"]', 'object', 'embed', 'meta[http-equiv="refresh"]',
                     'base[href^="javascript"]', 'noscript p', 'svg[onload]', 'form[action^="javascript"]'])
    if (document.querySelector(sel)) bad.push(sel);
  return bad;
}"""

# Code blocks load lazily: a skeleton stands in for each until its component has loaded.
LOADED = "() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
# The visible text, plus what select boxes and text fields show (their values are not part of innerText).
SHOWN_TEXT = """() => [document.body.innerText,
  ...[...document.querySelectorAll('input, textarea')].map(e => e.value)].join('\\n')"""


@dataclass
class Hostile:
    url: str
    run_ids: list[int] = field(default_factory=list)
    campaign_names: list[str] = field(default_factory=list)
    annotator_names: list[str] = field(default_factory=list)


def seed_hostile(url: str) -> Hostile:
    """Every payload as outputs, prompts, references, context, tags, item keys, suite/model/scorer names,
    user names, campaign names and guidelines, ratings' comments and corrections, a note, a job's log."""
    store = open_store(url)
    seeded = Hostile(url)
    items = [{"key": p, "input": ALL if i == 0 else p, "references": PAYLOADS if i == 0 else [p],
              "context": ALL if i == 0 else p, "tags": [p]} for i, p in enumerate(PAYLOADS)]
    with store.session_scope() as s:
        suite = queries.get_or_create_suite(s, name=SUITE, content_hash="xss-v1", items=items,
                                            scorers=["answer_match", SCORER])
        for number, model_name in ((1, MODEL_A), (2, MODEL_B)):
            model = queries.get_or_create_model_version(s, name=model_name, backend="hf", location=PAYLOADS[4],
                                                        fingerprint=f"xss-{number}")
            run = Run(suite_id=suite.id, model_version_id=model.id, fingerprint=f"xss-run-{number}",
                      status="completed", stats={"outputs": len(PAYLOADS)})
            s.add(run)
            s.flush()
            seeded.run_ids.append(run.id)
            for i, item in enumerate(suite.items):
                output = ALL if i == 0 else PAYLOADS[i] if number == 1 else PAYLOADS[-i]
                gen = Generation(run_id=run.id, item_id=item.id, cache_key=f"xss-{number}-{i}", prompt=item.key,
                                 output=output)
                s.add(gen)
                s.flush()
                for scorer, value in (("answer_match", float(number == 1)), (SCORER, i / len(PAYLOADS))):
                    s.add(Score(run_id=run.id, generation_id=gen.id, item_id=item.id, scorer=scorer, value=value))
            s.add(RunMetric(run_id=run.id, name=SCORER, scorer=SCORER, family="quality", value=0.5, ci_low=0.1,
                            ci_high=0.9, n=len(PAYLOADS)))
            # answer_match's run-level mean as scoring stores it, so the report compares (and flips) it by item.
            match = mean_with_ci([float(number == 1)] * len(PAYLOADS))
            s.add(RunMetric(run_id=run.id, name="answer_match", scorer="answer_match", family="quality",
                            value=match.value, ci_low=match.ci_low, ci_high=match.ci_high, n=match.n))
        users = [User(name=p[:100], role="annotator", password_hash=password_hash(), active=True) for p in PAYLOADS]
        users.append(User(name=ADMIN, role="admin", password_hash=password_hash(), active=True))
        s.add_all(users)
        s.flush()
        accounts = {u.name: u for u in users}
        for user in users[:-1]:  # one campaign per payload, given to the annotator of the same name
            create_campaign(s, None, name=user.name, run_ids=seeded.run_ids[:1], annotators=[user.id])
        main = create_campaign(s, None, name=MAIN_CAMPAIGN, run_ids=seeded.run_ids[:1], overlap=3,
                               guidelines="\n\n".join(PAYLOADS))
    seeded.campaign_names = [u.name for u in users[:-1]]
    seeded.annotator_names = seeded.campaign_names
    from evaltune.feedback_ui.auth import Account

    raters = [Account(u.id, u.name, u.role) for u in users[:2]]
    item_id = 0
    for rater, likert in zip(raters, (1, 5), strict=True):
        with store.session_scope() as s:
            held = claim_next(s, rater, main.id)
            assert held is not None
            item_id = held.campaign_item_id
            submit_rating(s, rater, held.assignment_id, SingleAnswer(
                likert=likert, hallucination=True, hallucinated_span=PAYLOADS[0], correction=ALL, comment=ALL))
    admin = accounts[ADMIN]
    with store.session_scope() as s:
        adjudicate(s, Account(admin.id, admin.name, "admin"), item_id, {"likert": 3}, note=ALL)
        dataset = PreferenceDataset(name=PAYLOADS[5], strategy="sft", campaign_id=main.id, counts={"train": 1})
        s.add(dataset)
        s.flush()
        job = jobs.enqueue(s, dataset_id=dataset.id, base_model_id=1, config=SftConfig(),
                           eval_suites=[PAYLOADS[6]])
        job.status, job.log, job.error, job.worker = "failed", ALL, ALL, PAYLOADS[7][:200]
    store.close()
    return seeded


def _norm(text: str) -> str:
    return " ".join(text.split())


def _check_frames(page: Any, dialogs: list[str], where: str) -> None:
    assert dialogs == [], f"{where}: a payload opened a dialog: {dialogs}"
    for frame in page.frames:
        assert frame.evaluate("() => window.__pwned") is None, f"{where}: a payload ran in {frame.url[:80]}"
        injected = frame.evaluate(FIND_INJECTED)
        assert injected == [], f"{where}: payload markup in the DOM of {frame.url[:80]}: {injected}"


def _check_literal(text: str, expected: list[str], where: str) -> None:
    shown = _norm(text)
    missing = [p for p in expected if _norm(p) not in shown]
    assert missing == [], f"{where}: not shown literally: {missing}"


@pytest.fixture
def hostile_app(tmp_path: Path) -> Iterator[tuple[str, Hostile]]:
    seeded = seed_hostile(f"sqlite:///{tmp_path / 'xss.db'}")
    port = _free_port()
    env = {**os.environ, "EVALTUNE_DB_URL": seeded.url, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "evaltune", "ui", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", seeded
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _expected(seeded: Hostile) -> dict[str, list[str]]:
    """What each page must show literally (beyond the signed-in name, on every page)."""
    return {
        "Rate": [*PAYLOADS, f"{MAIN_CAMPAIGN} (#{len(PAYLOADS) + 1})"],  # prompt, context, references, output
        "Progress": [],
        "Agreement": [f"#{len(PAYLOADS) + 1} {MAIN_CAMPAIGN}"],
        "Runs": [*PAYLOADS[:25], f"on {MODEL_B}"],  # the first page of item keys, in the expanders' titles
        "Compare": [],  # checked inside the report's frame
        "Adjudicate": PAYLOADS,
        "Campaigns": [MAIN_CAMPAIGN, *seeded.campaign_names, *(f"for {n}" for n in seeded.annotator_names)],
        "Retune": PAYLOADS,
        "Users": [],
    }


@pytest.mark.slow
def test_every_page_shows_every_payload_as_inert_text(playwright_api: Any,
                                                      hostile_app: tuple[str, Hostile]) -> None:
    from playwright.sync_api import expect

    base_url, seeded = hostile_app
    expected = _expected(seeded)
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    dialogs: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(base_url, wait_until="domcontentloaded")
        page.get_by_label("Name", exact=True).fill(ADMIN)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        for title, literal in expected.items():
            if title != "Rate":
                page.get_by_test_id("stSidebar").get_by_text(title, exact=True).click()
            expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=WAIT_MS)
            page.wait_for_selector(IDLE, timeout=WAIT_MS)
            page.wait_for_function(LOADED, timeout=WAIT_MS)
            _check_frames(page, dialogs, title)
            _check_literal(page.evaluate(SHOWN_TEXT), [ADMIN, *literal], title)
            if title == "Compare":
                report = page.frame_locator('iframe[data-testid="stIFrame"]').locator("body")
                expect(report).to_contain_text("Verdict", timeout=WAIT_MS)
                _check_literal(report.inner_text(), [SUITE, MODEL_A, MODEL_B, SCORER, *PAYLOADS[1:FLIPS_SHOWN]],
                               "Compare report")
                _check_frames(page, dialogs, "Compare report")
    finally:
        browser.close()


@pytest.mark.slow
def test_the_html_report_shows_every_payload_as_inert_text(playwright_api: Any, tmp_path: Path) -> None:
    seeded = seed_hostile(f"sqlite:///{tmp_path / 'xss.db'}")
    store: Store = open_store(seeded.url)
    with store.session_scope() as session:
        report = build_report(session, seeded.run_ids[0], seeded.run_ids[1])
    store.close()
    path = tmp_path / "report.html"
    path.write_text(render_report(report, "html"), encoding="utf-8")
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    dialogs: list[str] = []
    try:
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(path.as_uri())
        _check_frames(page, dialogs, "report")
        assert page.locator("script").count() == 0
        shown = page.inner_text("body")
        flipped = [PAYLOADS[i] for i in range(1, FLIPS_SHOWN)]  # baseline outputs and item keys of the flips
        _check_literal(shown, [SUITE, MODEL_A, MODEL_B, SCORER, *flipped], "report")
        assert _norm(page.title()) == _norm(f"evaltune: run {seeded.run_ids[1]} vs run {seeded.run_ids[0]}")
    finally:
        browser.close()


# Without a browser: what the app's markdown escaping and the guidelines' link filter make of the corpus.


def test_escaped_payloads_render_as_their_own_text() -> None:
    """``inline`` (used wherever stored text meets markdown we write) leaves a CommonMark renderer nothing to
    parse: each payload comes out as exactly its own text, with no tag."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")  # raw HTML allowed: stricter than Streamlit
    for payload in PAYLOADS:
        rendered = md.renderInline(inline(payload))
        assert "<" not in rendered and html.unescape(rendered) == payload, payload


@pytest.mark.parametrize(("guidelines", "kept"), [
    ("[a](https://example.org/a_(b)) [m](mailto:x@example.org) [r](/rules) [h](#top)", True),
    ("[a](javascript:alert(1))", False),
    ("[a](  <JavaScript:alert(1)>)", False),
    ("[a](java&#9;script:alert(1))", False),
    ("[a](javascript&#58;alert(1))", False),
    ("![i](data:text/html;base64,AAAA)", False),
    ("[r]\n\n[r]: vbscript:msgbox", False),
    ("<javascript:alert(1)>", False),
])
def test_guideline_links_keep_only_web_and_mail_urls(guidelines: str, kept: bool) -> None:
    assert (safe_markdown(guidelines) == guidelines) is kept


def test_no_guideline_payload_leaves_an_unsafe_url() -> None:
    """Rendered by a permissive CommonMark renderer (every URL allowed), the filtered guidelines have no link
    or image to anything but http(s), mailto or the page itself."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"html": False})
    md.validateLink = lambda url: True
    rendered = md.render(safe_markdown("\n\n".join(PAYLOADS)))
    urls = [html.unescape(u) for u in re.findall(r'(?:href|src)="([^"]*)"', rendered)]
    assert urls and all(re.match(r"(https?:|mailto:|#|[^:]*$)", u) for u in urls), urls
