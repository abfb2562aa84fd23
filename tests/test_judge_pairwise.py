"""``evaltune judge pairwise BASE CAND``: two runs made by ``evaltune run`` against a fake endpoint whose answers are
fixed per question, judged by a fake judge endpoint whose verdicts are known, every count, win rate, Wilson interval
and position bias checked against the numbers written out by hand below; ties by rule, the cache, ``--json``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

from evaltune.db import Store
from evaltune.db.judging import JudgeCall
from evaltune.metrics.stats.intervals import wilson_interval
from tests.conftest import Cli
from tests.fixtures.answer_server import answer_server, send_json, serving

CITIES = {"Peru": "Lima", "Japan": "Tokyo", "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Egypt": "Cairo",
          "Kenya": "Nairobi", "Chile": "Santiago"}
SUITE = """\
name: pairwise-capitals
generation: {max_new_tokens: 16, temperature: 0.0, chat: always}
scorers: [answer_match]
items:
""" + "".join(f'  - {{id: q{i}, input: "What is the capital of {country}?", references: [{city}]}}\n'
              for i, (country, city) in enumerate(CITIES.items(), start=1))
# What each run answers. q1-q3: only the candidate is right (it wins); q4: only the baseline (it loses); q5, q6: the
# same words, spaced differently (a tie by rule, never asked); q7: both right (the fair judge says C: even); q8: both
# wrong (the fair judge then picks whatever it is shown first: the verdict flips with the order, a tie).
BASELINE = {"Peru": "Wrong city.", "Japan": "Wrong city.", "France": "Wrong city.", "Italy": "Rome.",
            "Spain": "It is  Madrid.", "Egypt": "Cairo,\tof course.", "Kenya": "Nairobi.", "Chile": "No idea."}
CANDIDATE = {"Peru": "Lima.", "Japan": "Tokyo.", "France": "Paris.", "Italy": "Wrong <b>city</b>\x1b[2J.",
             "Spain": "It is Madrid.", "Egypt": "Cairo, of  course.", "Kenya": "It is Nairobi.",
             "Chile": "I would not know."}
JUDGE_NAME = "fake-judge"
_ANSWERS = re.compile(r"Question:\n(.*?)\n\nAnswer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\nReply with", re.S)


class _FakeJudge(ThreadingHTTPServer):
    def __init__(self, always_a: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.always_a = always_a
        self.asked: list[str] = []  # every question put to the judge (each order is one)


class _Handler(BaseHTTPRequestHandler):
    """The fair judge prefers the right answer (the question's capital, not "Wrong"), says C when both are right,
    and picks the answer shown first when neither is; the always-A judge answers A whatever it is shown."""

    server: _FakeJudge

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        send_json(self, 200, {"object": "list", "data": [{"id": JUDGE_NAME, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        self.server.asked.append(prompt)
        reply = "A, whatever it says." if self.server.always_a else _fair_letter(prompt)
        send_json(self, 200, {"choices": [{"message": {"role": "assistant", "content": reply}, "text": reply,
                                           "finish_reason": "stop"}], "usage": {"prompt_tokens": 1,
                                                                                "completion_tokens": 1}})


def _fair_letter(prompt: str) -> str:
    found = _ANSWERS.search(prompt)
    assert found, prompt
    question, first, second = found.groups()
    city = next(city for country, city in CITIES.items() if country in question)
    right_first, right_second = (city in answer and "Wrong" not in answer for answer in (first, second))
    if right_first == right_second:
        return "C: equally good." if right_first else "A, I suppose."
    return "A is better." if right_first else "B is better."


@contextmanager
def fake_judge(always_a: bool = False) -> Iterator[_FakeJudge]:
    with serving(_FakeJudge(always_a)) as server:
        yield server


def _judge_args(server: _FakeJudge) -> list[str]:
    return ["--judge", f"openai:http://127.0.0.1:{server.server_address[1]}/v1", "--judge-model-name", JUDGE_NAME]


@dataclass(frozen=True)
class Runs:
    baseline: int
    candidate: int


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def runs(store: Store, cli: Cli, tmp_path: Path) -> Runs:
    """The two runs, each ``evaltune run SUITE --model openai:URL --model-name NAME``."""
    suite = tmp_path / "pairwise-capitals.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    answers = {name: {f"capital of {country}": text for country, text in table.items()}
               for name, table in (("base", BASELINE), ("cand", CANDIDATE))}
    ids = []
    with answer_server(answers) as url:
        for name in ("base", "cand"):
            code, out, err = cli("run", str(suite), "--model", f"openai:{url}", "--model-name", name)
            assert code == 0, err
            found = re.search(r"run (\d+)", out)
            assert found, out
            ids.append(int(found.group(1)))
    return Runs(*ids)


def _pairwise_json(cli: Cli, runs: Runs, server: _FakeJudge, *more: str) -> dict[str, Any]:
    code, out, err = cli("judge", "pairwise", str(runs.baseline), str(runs.candidate), *_judge_args(server),
                         "--json", *more)
    assert code == 0, err
    record: dict[str, Any] = json.loads(out)
    return record


def _rate(successes: float, n: int) -> dict[str, float]:
    low, high = wilson_interval(successes, n)
    return {"value": successes / n, "ci_low": low, "ci_high": high, "n": n}


def test_counts_win_rates_and_position_bias_of_a_fair_judge(store: Store, cli: Cli, runs: Runs) -> None:
    with fake_judge() as server:
        result = _pairwise_json(cli, runs, server)
    # By hand: 8 pairs; 6 judged (q5, q6 identical); wins q1-q3, loss q4; ties: 2 by rule, q7 even, q8 flipped.
    assert (result["pairs"], result["shared_items"], result["judged"]) == (8, 8, 6)
    assert (result["wins"], result["losses"], result["ties"]) == (3, 1, 4)
    assert (result["ties_by_rule"], result["ties_judged_even"], result["ties_order_flipped"]) == (2, 1, 1)
    assert result["held_both_orders"] == 5  # q1-q4 and q7's C in both orders; q8 said "A" both times
    assert result["win_rate"] == pytest.approx(_rate(3, 4))  # over decided pairs
    assert result["win_rate_all"] == pytest.approx(_rate(3 + 4 / 2, 8))  # a tie counts half
    # Decided answers: q1-q4 give 8, of which 4 picked the answer shown first; q8 gives 2, both first: 6 of 10.
    position = result["position"]
    assert (position["first_shown_rate"], position["position_bias"]) == (pytest.approx(0.6), pytest.approx(0.1))
    assert position["first_shown_ci"] == pytest.approx(list(wilson_interval(6, 10)))
    assert (position["tie_answers"], position["unreadable_answers"]) == (2, 0)
    assert result["lost"] == [{"item": "q4", "question": "What is the capital of Italy?", "baseline": "Rome.",
                               "candidate": "Wrong <b>city</b>\x1b[2J."}]
    assert result["schema_version"] == 1 and result["judge"] and result["criteria"]
    assert (result["baseline"]["id"], result["candidate"]["id"]) == (runs.baseline, runs.candidate)
    # Every judged pair was asked once in each order, the baseline shown first in the first; ties by rule never.
    assert len(server.asked) == 12
    assert not [q for q in server.asked if "Madrid" in q or "Cairo" in q]


def test_the_text_report(store: Store, cli: Cli, runs: Runs) -> None:
    with fake_judge() as server:
        code, out, err = cli("judge", "pairwise", str(runs.baseline), str(runs.candidate), *_judge_args(server))
    assert code == 0, err
    low, high = wilson_interval(3, 4)
    assert f"candidate win rate, decided pairs: 75.0% (95% CI {low:.1%} to {high:.1%}, n=4)\n" in out
    low, high = wilson_interval(5, 8)
    assert f"all pairs (a tie counts half): 62.5% (95% CI {low:.1%} to {high:.1%}, n=8)\n" in out
    assert "wins 3, losses 1, ties 4: 2 identical (not asked), 1 judged even, 1 flipped with the order\n" in out
    assert "held in both orders: 5 of 6 judged pairs" in out
    bias_low, bias_high = (v - 0.5 for v in wilson_interval(6, 10))
    assert f"position bias: +0.10 (95% CI {bias_low:+.2f} to {bias_high:+.2f})" in out
    lost = out.split("items the candidate lost (1):\n")[1].splitlines()
    # Shown as plain text: markup as typed, a terminal escape as its code.
    assert lost == ["  q4  baseline: Rome.", "      candidate: Wrong <b>city</b>\\x1b[2J."]


def test_an_always_a_judge_shows_full_position_bias_and_decides_nothing(store: Store, cli: Cli, runs: Runs) -> None:
    with fake_judge(always_a=True) as server:
        result = _pairwise_json(cli, runs, server)
    # Every verdict flips with the order: 6 judged ties, none held, and the answer shown first won all 12 times.
    assert (result["wins"], result["losses"], result["ties"], result["ties_order_flipped"]) == (0, 0, 8, 6)
    assert result["held_both_orders"] == 0 and result["win_rate"] is None
    assert result["win_rate_all"] == pytest.approx(_rate(4, 8))
    position = result["position"]
    assert (position["first_shown_rate"], position["position_bias"]) == (1.0, 0.5)
    assert position["first_shown_ci"] == pytest.approx(list(wilson_interval(12, 12)))
    with fake_judge(always_a=True) as server:
        code, out, err = cli("judge", "pairwise", str(runs.baseline), str(runs.candidate), *_judge_args(server),
                             "--criteria", "Which is shorter?")  # another question: asked anew, not cached
    assert code == 0, err
    assert "decided pairs: n/a (every pair tied)" in out and "position bias: +0.50" in out
    assert len(server.asked) == 12 and all("Which is shorter?" in q for q in server.asked)


def test_a_second_call_asks_the_judge_nothing_and_stores_only_its_calls(store: Store, cli: Cli, runs: Runs) -> None:
    before = _rows(store)
    with fake_judge() as server:
        first = _pairwise_json(cli, runs, server)
        assert len(server.asked) == 12
        again = _pairwise_json(cli, runs, server)
        assert len(server.asked) == 12  # every answer came from the store
    assert again == first
    after = _rows(store)
    assert after.pop("judge_calls") == before.pop("judge_calls") + 12
    assert after == before
    with store.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(JudgeCall)) == 12


def test_limit_judges_the_first_items_only(store: Store, cli: Cli, runs: Runs) -> None:
    with fake_judge() as server:
        result = _pairwise_json(cli, runs, server, "--limit", "5")
    assert (result["pairs"], result["shared_items"], result["judged"], result["ties_by_rule"]) == (5, 8, 4, 1)
    assert (result["wins"], result["losses"]) == (3, 1) and len(server.asked) == 8


def test_identical_runs_are_all_ties_by_rule(store: Store, cli: Cli, runs: Runs) -> None:
    with fake_judge() as server:
        result = _pairwise_json(cli, Runs(runs.baseline, runs.baseline), server)
    assert (result["pairs"], result["ties"], result["ties_by_rule"], result["judged"]) == (8, 8, 8, 0)
    assert result["position"] is None and result["win_rate"] is None and server.asked == []


def test_refusals_name_the_fix(store: Store, cli: Cli, runs: Runs) -> None:
    code, _out, err = cli("judge", "pairwise", str(runs.baseline), "99", "--judge", "openai:http://127.0.0.1:9/v1",
                          "--judge-model-name", "j")
    assert code == 2 and "CANDIDATE_RUN: no run 99" in err and "evaltune runs list" in err
    code, _out, err = cli("judge", "pairwise", str(runs.baseline), str(runs.candidate))
    assert code == 2 and "no judge to ask" in err and "EVALTUNE_JUDGE_MODEL" in err


def _rows(store: Store) -> dict[str, int]:
    with store.session_scope() as session:
        tables = inspect(session.connection()).get_table_names()
        return {t: int(session.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()) for t in tables}
