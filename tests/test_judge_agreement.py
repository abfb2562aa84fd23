"""Judge vs annotators: ``evaltune judge agreement`` on seeded campaigns whose ratings are known (stored through the
rating queue), judged by a small fake OpenAI-compatible endpoint whose answers are known, every number checked
against a computation written out by hand below; the judge on the app's Agreement page; the refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.evaluation import Score
from evaltune.feedback_ui.adjudication import adjudicate
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from evaltune.metrics.stats.agreement import alpha_with_ci, krippendorff_alpha, spearman_with_ci
from evaltune.reports.judge_agreement import consensus, stored_judges
from tests.conftest import Cli
from tests.fixtures.answer_server import send_json, serving
from tests.fixtures.feedback_seed import PASSWORD, Seeded, rate_campaign, seed_runs, seed_store

F, T = False, True
# What the two annotators answered for items q0..q5 of run 1 (single output) ...
LIKERT = {"ann1": [5, 4, 2, 1, 3, 4], "ann2": [5, 4, 2, 3, 3, 2]}  # medians 5 4 2 2 3 3
FLAGS = {"ann1": [F, F, T, T, F, F], "ann2": [F, T, T, F, F, F]}  # items 1 and 3 split evenly
# ... and which run's output they preferred in the A/B campaign of runs 1 and 2 (None: a tie; 0: both bad).
PREFERRED = {"ann1": [1, 1, 2, 2, None, 1], "ann2": [1, 2, 2, 2, 0, 1]}
# What the fake judge answers: its Likert grade, its faithfulness grade (1-5), and the run it prefers.
JUDGE_LIKERT = [5, 3, 2, 1, 3, 4]
JUDGE_FAITHFUL = [5, 2, 1, 2, 4, 1]  # P(hallucinated) = 1 - (grade - 1) / 4 = 0, .75, 1, .75, .25, 1
JUDGE_PREFERS = [1, 1, 2, 1, None, "A"]  # "A": always the answer shown first (position bias)
JUDGE_NAME = "fake-judge"
APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")


class _FakeJudge(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.asked: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    """Reads the item number and the kind of question from the judge's prompt and answers from the tables above."""

    server: _FakeJudge

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, payload: dict[str, Any]) -> None:
        send_json(self, 200, payload)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": JUDGE_NAME, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        self.server.asked.append(prompt)
        item = int(re.search(r"Question (\d+): what is the capital", prompt).group(1))  # type: ignore[union-attr]
        if "Answer A:" in prompt:
            reply = _letter(prompt, JUDGE_PREFERS[item])
        elif "Faithfulness" in prompt:
            reply = f"{JUDGE_FAITHFUL[item]} - the test's fixed grade."
        else:
            reply = f"{JUDGE_LIKERT[item]} - the test's fixed grade."
        self._send({"choices": [{"message": {"role": "assistant", "content": reply}, "text": reply,
                                 "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})


def _letter(prompt: str, prefers: int | str | None) -> str:
    if prefers is None:
        return "C: equally good."
    if prefers == "A":
        return "A, whatever it says."
    shown_first = prompt.index("Answer A:") < prompt.find(f"Run {prefers} says") < prompt.index("Answer B:")
    return "A is better." if shown_first else "B is better."


@contextmanager
def fake_judge() -> Iterator[_FakeJudge]:
    with serving(_FakeJudge()) as server:
        yield server


def _url(server: _FakeJudge) -> str:
    return f"openai:http://127.0.0.1:{server.server_address[1]}/v1"


def _index(task: Task) -> int:
    return int(task.item_key.removeprefix("q"))


def _rate_single(store: Store, seeded: Seeded) -> int:
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="answers", run_ids=seeded.run_ids[:1], overlap=2).id
    for name in ("ann1", "ann2"):
        def answer(task: Task, name: str = name) -> SingleAnswer:
            i = _index(task)
            return SingleAnswer(likert=LIKERT[name][i], hallucination=FLAGS[name][i],
                                hallucinated_span="Capital" if FLAGS[name][i] else None)
        with store.session_scope() as s:
            rate_campaign(s, seeded.users[name], campaign, answer)
    return campaign


def _rate_pairs(store: Store, seeded: Seeded) -> int:
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="a/b", run_ids=seeded.run_ids, pairwise=True, overlap=2).id
    for name in ("ann1", "ann2"):
        def answer(task: Task, name: str = name) -> PairAnswer:
            preferred = PREFERRED[name][_index(task)]
            if not preferred:
                return PairAnswer("tie" if preferred is None else "both_bad")
            return PairAnswer("a" if task.outputs[0].startswith(f"Run {preferred} ") else "b")
        with store.session_scope() as s:
            rate_campaign(s, seeded.users[name], campaign, answer)
    return campaign


def _pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5


def _by_question(out: str) -> dict[str, Any]:
    return {q["question"]: q for q in json.loads(out)["questions"]}


def _judge_args(server: _FakeJudge, campaign: int, *more: str) -> list[str]:
    return ["judge", "agreement", "--campaign", str(campaign), "--judge", _url(server),
            "--judge-model-name", JUDGE_NAME, *more]


def test_likert_and_flag_agreement_equal_the_hand_computation(store: Store, cli: Cli) -> None:
    seeded = seed_store(store, items=6)
    campaign = _rate_single(store, seeded)
    with fake_judge() as server:
        code, out, err = cli(*_judge_args(server, campaign, "--json"))
        assert code == 0, err
        asked = len(server.asked)
        assert asked == 12  # six outputs, two questions each (the endpoint does chat: one request per question)
        results = _by_question(out)

        # Likert, ordinal: judge 5 3 2 1 3 4 against the medians 5 4 2 2 3 3. Coincidences: o(5,5) = o(2,2) =
        # o(3,3) = 2, o(3,4) = o(4,3) = 2, o(1,2) = o(2,1) = 1; marginals n1 1, n2 3, n3 4, n4 2, n5 2 (n 12).
        # Ordinal distance d(c,k) = (n_c + ... + n_k - (n_c + n_k) / 2)^2: d(1,2) 4, d(3,4) 9, d(1,3) 30.25,
        # d(1,4) 72.25, d(1,5) 110.25, d(2,3) 12.25, d(2,4) 42.25, d(2,5) 72.25, d(3,5) 25, d(4,5) 4.
        observed = 2 * 1 * 4 + 2 * 2 * 9
        expected = 2 * (1 * 3 * 4 + 1 * 4 * 30.25 + 1 * 2 * 72.25 + 1 * 2 * 110.25 + 3 * 4 * 12.25 + 3 * 2 * 42.25
                        + 3 * 2 * 72.25 + 4 * 2 * 9 + 4 * 2 * 25 + 2 * 2 * 4)
        likert = results["likert"]
        assert likert["level"] == "ordinal" and likert["items"] == 6
        assert likert["alpha"]["value"] == pytest.approx(1 - (12 - 1) * observed / expected)  # 0.8506
        # Spearman: ranks of the judge's grades and of the annotators' means (ties share their mean rank).
        assert likert["rho"]["value"] == pytest.approx(_pearson([6, 3.5, 2, 1, 3.5, 5], [6, 5, 1.5, 1.5, 3.5, 3.5]))
        assert likert["alpha"]["ci_low"] <= likert["alpha"]["value"] <= likert["alpha"]["ci_high"]

        # The flag, nominal: items 1 and 3 split evenly and are left out. Judge (P > .5) vs consensus on items
        # 0, 2, 4, 5: no/no, yes/yes, no/no, yes/no: o(no,no) 4, o(yes,yes) 2, o(yes,no) = o(no,yes) 1;
        # n_no 5, n_yes 3 (n 8); alpha = 1 - 7 * 2 / (2 * 5 * 3).
        flag = results["hallucination"]
        assert (flag["items"], flag["split"], flag["rated"], flag["judged"]) == (4, 2, 6, 6)
        assert flag["alpha"]["value"] == pytest.approx(1 - 7 * 2 / (2 * 5 * 3))  # 0.5333
        # rho: P(hallucinated) 0 .75 1 .75 .25 1 against the share who flagged 0 .5 1 .5 0 0.
        assert flag["rho"]["value"] == pytest.approx(_pearson([1, 3.5, 5.5, 3.5, 2, 5.5], [2, 4.5, 6, 4.5, 2, 2]))
        assert {(c["judge"], c["annotators"]): c["items"] for c in flag["confusion"]} == {
            ("not flagged", "not flagged"): 2, ("flagged", "flagged"): 1, ("flagged", "not flagged"): 1}

        # The annotators among themselves, for scale: the same statistic over their own ratings.
        units = [{a: 1, b: 1} if a != b else {a: 2} for a, b in zip(*LIKERT.values(), strict=True)]
        assert likert["annotators_alpha"]["value"] == pytest.approx(krippendorff_alpha(units, "ordinal"))

        # The judge's answers are stored with the outputs, so asking again calls the judge for nothing.
        with store.session_scope() as s:
            stored = dict(s.execute(select(Score.scorer, func.count()).where(Score.scorer.startswith("judge."))
                                    .group_by(Score.scorer)).all())
            grades = s.execute(select(Score.value).where(Score.scorer == likert["scorer"])
                               .order_by(Score.generation_id)).scalars().all()
        assert stored == {likert["scorer"]: 6, flag["scorer"]: 6}
        assert likert["scorer"].startswith("judge.llm-rubric.overall-quality-the-answer-is-correct")
        assert grades == JUDGE_LIKERT
        code, again, err = cli(*_judge_args(server, campaign, "--json"))
        assert code == 0, err
        assert len(server.asked) == asked and _by_question(again) == results


def test_the_text_report_says_what_the_numbers_mean(store: Store, cli: Cli) -> None:
    seeded = seed_store(store, items=6)
    campaign = _rate_single(store, seeded)
    with fake_judge() as server:
        code, out, err = cli(*_judge_args(server, campaign, "--scorer", "judge"))
    assert code == 0, err
    assert f"judge agreement: campaign {campaign} (answers), judge {JUDGE_NAME} @ 127.0.0.1:" in out
    assert "hallucination (nominal)  4      0.533 [" in out and "likert" not in out  # --scorer judge: the flag only
    assert "hallucination: keep annotators: the judge does not agree with them well enough (2 items split evenly" in out
    assert "the judge gave the consensus answer on 3 of 4 items" in out


def test_an_adjudicated_decision_is_the_consensus(store: Store, cli: Cli) -> None:
    """Item 1's annotators split on the flag; an admin's decision (flagged, as the judge says) settles it."""
    seeded = seed_store(store, items=6)
    campaign = _rate_single(store, seeded)
    with store.session_scope() as s:
        item = _item_id(s, campaign, 1)
        adjudicate(s, seeded.users["admin"], item, {"hallucination": True})
    with fake_judge() as server:
        code, out, err = cli(*_judge_args(server, campaign, "--scorer", "judge", "--json"))
    assert code == 0, err
    flag = _by_question(out)["hallucination"]
    # One more yes/yes unit: o(no,no) 4, o(yes,yes) 4, o(yes,no) = o(no,yes) 1; n_no 5, n_yes 5 (n 10).
    assert (flag["items"], flag["split"]) == (5, 1)
    assert flag["alpha"]["value"] == pytest.approx(1 - 9 * 2 / (2 * 5 * 5))


def _item_id(session: Any, campaign: int, index: int) -> int:
    from evaltune.db.evaluation import SuiteItem
    from evaltune.db.ratings import CampaignItem

    return session.execute(select(CampaignItem.id).join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
                           .where(CampaignItem.campaign_id == campaign, SuiteItem.key == f"q{index}")).scalar_one()


def test_pairwise_votes_against_the_judges_verdicts(store: Store, cli: Cli) -> None:
    seeded = seed_store(store, items=6)
    campaign = _rate_pairs(store, seeded)
    with fake_judge() as server:
        code, out, err = cli(*_judge_args(server, campaign, "--json"))
        assert code == 0, err
        assert len(server.asked) == 12  # six pairs, each asked in both orders
        code, text, err = cli(*_judge_args(server, campaign))
        assert code == 0 and len(server.asked) == 12, err  # the store keeps the judge's answers
    record = json.loads(out)
    choice = _by_question(out)["choice"]
    # Annotators (first = run 1's output): first, split, second, second, tie (tie + both bad), first.
    # Judge: first, first, second, first, tie, tie (item 5 flips with the order: position bias, a tie).
    # Units without item 1: f/f, s/s, f/s, t/t, t/f: o(f,f) = o(s,s) = o(t,t) = 2, o(f,s) = o(s,f) =
    # o(t,f) = o(f,t) = 1; n_f 4, n_s 3, n_t 3 (n 10); expected 2 * (4*3 + 4*3 + 3*3).
    assert (choice["items"], choice["split"]) == (5, 1)
    assert choice["alpha"]["value"] == pytest.approx(1 - 9 * 4 / (2 * (4 * 3 + 4 * 3 + 3 * 3)))  # 0.4545
    # rho: the judge's 1 1 0 1 .5 .5 against the annotators' mean preference 1 0 -1 -1 0 1.
    assert choice["rho"]["value"] == pytest.approx(_pearson([5, 5, 1, 5, 2.5, 2.5], [5.5, 3.5, 1.5, 1.5, 3.5, 5.5]))
    assert {(c["judge"], c["annotators"]): c["items"] for c in choice["confusion"]} == {
        ("first", "first"): 1, ("second", "second"): 1, ("first", "second"): 1, ("tie", "tie"): 1,
        ("tie", "first"): 1}
    # Position bias: of the 10 decided answers (item 4's ties left out), 6 picked the output shown first.
    summary = record["pairwise"]
    assert (summary["pairs"], summary["wins_a"], summary["wins_b"], summary["ties"], summary["consistent"]) == (
        6, 3, 1, 2, 5)
    assert summary["position_bias"] == pytest.approx(0.1)
    # The judge as one more rater: item 4's tie and both-bad are one answer (tie) beside the judge's tie.
    assert choice["alpha_with_judge"] == pytest.approx(krippendorff_alpha(
        [{"first": 3}, {"first": 2, "second": 1}, {"second": 3}, {"second": 2, "first": 1}, {"tie": 3},
         {"first": 2, "tie": 1}], "nominal"))
    runs = seeded.run_ids
    assert f"choice: first is run {runs[0]}'s output, second is run {runs[1]}'s" in text
    assert "choice (nominal)  5      0.455 [" in text and "position bias +0.10" in text


def test_ab_verdicts_belong_to_the_two_runs_compared(store: Store, cli: Cli) -> None:
    """Run 1's outputs are compared with run 2's in one campaign and with run 3's in another: the first campaign's
    verdicts are stored on run 1's outputs, yet they are not the second campaign's judge."""
    seeded = seed_store(store, items=6)
    compared = _rate_pairs(store, seeded)
    with store.session_scope() as s:
        third = seed_runs(s, items=6).run_ids[0]  # another run of the same suite
        other = create_campaign(s, None, name="1 vs 3", run_ids=[seeded.run_ids[0], third], pairwise=True).id
    with fake_judge() as server:
        code, _, err = cli(*_judge_args(server, compared))
    assert code == 0, err
    with store.session_scope() as s:
        assert [d["question"] for d in stored_judges(s, compared).values()] == ["choice"]
        assert stored_judges(s, other) == {}


def test_the_agreement_page_shows_the_judge_as_one_more_rater(store: Store, cli: Cli) -> None:
    seeded = seed_store(store, items=6)
    campaign = _rate_single(store, seeded)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "agreement"
    at.run()
    at.text_input(key="login_name").input("view")
    at.text_input(key="login_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert not at.exception
    assert any(f"judge agreement --campaign {campaign}" in c.value for c in at.caption)  # no judge yet: how to add
    with fake_judge() as server:
        code, _, err = cli(*_judge_args(server, campaign))
    assert code == 0, err
    at.run()
    assert not at.exception
    judges = next(df.value for df in at.dataframe if "judge vs consensus alpha [95% CI]" in df.value)
    rows = {row["question"]: row for row in judges.to_dict("records")}
    assert rows["likert"]["judge vs consensus alpha [95% CI]"].startswith("0.851 [")
    assert rows["hallucination"]["judge vs consensus alpha [95% CI]"].startswith("0.533 [")
    assert rows["likert"]["judge"].startswith(f"{JUDGE_NAME} @ 127.0.0.1:")
    kappas = next(df.value for df in at.dataframe if "kappa" in df.value)
    raters = kappas["annotators"].tolist()
    assert "ann1 / ann2" in raters
    assert any(r.startswith(f"judge {JUDGE_NAME} @") and r.endswith("/ ann1") for r in raters)
    criteria = next(df.value for df in at.dataframe if list(df.value.columns) == ["question", "criteria"])
    assert any("Overall quality" in text for text in criteria["criteria"])  # the criteria, in a table as text


def _store_counts(store: Store) -> tuple[int, int]:
    from sqlalchemy import text

    with store.session_scope() as s:
        scores = s.execute(select(func.count()).select_from(Score)).scalar_one()
        calls = s.execute(text("SELECT count(*) FROM judge_calls")).scalar_one()
    return scores, calls


@pytest.mark.parametrize(("args", "words"), [
    (["--campaign", "999"], ["--campaign: no campaign 999", "evaltune campaigns list"]),
    (["--campaign", "{unrated}"], ["has no ratings yet", "evaltune ui"]),
    (["--campaign", "{rated}"], ["no judge to ask", "--judge", "EVALTUNE_JUDGE_MODEL"]),
    (["--campaign", "{pairs}", "--scorer", "judge"], ["--scorer judge", "is A/B", "leave --scorer out"]),
])
def test_refusals_name_the_fix_exit_2_and_store_nothing(store: Store, cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                       args: list[str], words: list[str]) -> None:
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)
    seeded = seed_store(store, items=6)
    rated = _rate_single(store, seeded)
    pairs = _rate_pairs(store, seeded)
    with store.session_scope() as s:
        unrated = create_campaign(s, None, name="nobody yet", run_ids=seeded.run_ids[:1]).id
    places = {"{rated}": str(rated), "{unrated}": str(unrated), "{pairs}": str(pairs)}
    before = _store_counts(store)
    code, out, err = cli("judge", "agreement", *[places.get(a, a) for a in args])
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert all(word in err for word in words), err
    assert _store_counts(store) == before


def test_alpha_and_rho_intervals_are_seeded_bootstraps() -> None:
    """The vectorised resampling gives what a plain loop over the same draws gives."""
    import numpy as np

    units = [{5: 2}, {3: 1, 4: 1}, {2: 2}, {1: 1, 2: 1}, {3: 2}, {4: 1, 3: 1}, {5: 1, 4: 1}]
    estimate = alpha_with_ci(units, "ordinal", seed=3, resamples=200)
    draws = np.random.default_rng(3).multinomial(len(units), [1 / len(units)] * len(units), size=200)
    looped = [krippendorff_alpha([u for u, times in zip(units, row, strict=True) for _ in range(times)], "ordinal")
              for row in draws]
    defined = [a for a in looped if a is not None]
    assert estimate.ci_low == pytest.approx(float(np.percentile(defined, 2.5)))
    assert estimate.ci_high == pytest.approx(float(np.percentile(defined, 97.5)))
    assert alpha_with_ci(units, "ordinal", seed=3, resamples=200) == estimate
    rho = spearman_with_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert rho.value == pytest.approx(_pearson([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]))
    assert rho.ci_low is not None and rho.ci_low <= rho.value <= (rho.ci_high or 0) <= 1
    assert spearman_with_ci([1, 1, 1], [1, 2, 3]).value is None


def test_consensus_rules() -> None:
    assert consensus("likert", {2: 1, 5: 1}) == (3.5, 3.5)
    assert consensus("likert", {2: 1, 5: 1}, decided=4) == (4, 4.0)
    assert consensus("hallucination", {True: 1, False: 1}) == (None, 0.5)
    assert consensus("hallucination", {True: 2, False: 1}) == (True, pytest.approx(2 / 3))
    assert consensus("choice", {"both_bad": 1, "tie": 1}) == ("tie", 0.0)
    assert consensus("choice", {"first": 1, "second": 1}, decided="both_bad") == ("tie", 0.0)
