"""The sweep matrix: a 2-variant × 2-model sweep made by ``evaltune run`` against two fake endpoints whose answers
are fixed per prompt, its numbers checked against separately computed comparisons (``build_report`` of the baseline
run and each cell's run, and Benjamini–Hochberg by hand over the matrix's p-values), and shown by ``sweeps list``,
``sweeps show``, ``report --sweep`` and the app's Sweeps page.
"""

from __future__ import annotations

import json
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.evaluation import RunMetric
from evaltune.db.sweeps import Sweep
from evaltune.metrics.stats.paired import benjamini_hochberg
from evaltune.reports.compare import build_report
from evaltune.reports.load import ReportError
from evaltune.reports.sweep_matrix import build_matrix, matrix_record
from tests.conftest import Cli
from tests.fixtures.answer_server import answer_server
from tests.fixtures.feedback_seed import HOSTILE, PASSWORD, seed_users

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")
CAPITALS = [("Peru", "Lima"), ("Japan", "Tokyo"), ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Chile", "Santiago"), ("Cuba", "Havana"),
            ("Nepal", "Kathmandu"), ("Norway", "Oslo"), ("Greece", "Athens")]
SUITE = """\
name: sweep-capitals
generation: {max_new_tokens: 16, temperature: 0.0, chat: always}
scorers: [answer_match, token_f1]
defaults:
  assert:
    - {type: max-words, value: 3}
prompts:
  plain: {template: "{{ input }}"}
  polite: {system: "Be polite.", template: "Please answer: {{ input }}"}
items:
""" + "".join(f'  - {{id: q{i:02d}, input: "What is the capital of {country}?", references: [{city}]}}\n'
              for i, (country, city) in enumerate(CAPITALS, start=1))
POLITE = "Please answer: What is the capital of "


def good_model() -> dict[str, str]:
    """Right on every plain question; asked politely, right on the first six only."""
    answers = {f"{POLITE}{country}": "Wrong city." for country, _city in CAPITALS[6:]}
    return answers | {f"capital of {country}": f"{city}." for country, city in CAPITALS}


def odd_model() -> dict[str, str]:
    """Asked politely, right on every question ("It is Lima."); asked plainly, hostile markup on the first, right on
    the next three, and no answer on the rest."""
    answers = {f"{POLITE}{country}": f"It is {city}." for country, city in CAPITALS}
    plain = [HOSTILE] + [f"{city}." for _country, city in CAPITALS[1:4]] + ["No idea at all, sorry."] * 8
    return answers | {f"capital of {country}": text for (country, _city), text in zip(CAPITALS, plain, strict=True)}


# answer_match per cell, in the order the sweep runs them (model by model, variants in file order)
ANSWER_MATCH = {"plain@A": 1.0, "polite@A": 0.5, "plain@B": 0.25, "polite@B": 1.0}


@dataclass(frozen=True)
class MadeSweep:
    sweep_id: int
    labels: dict[str, str]  # short name (plain@A) -> the cell's label (plain@openai:http://...)
    stdout: str


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, or PostgreSQL where a test is parametrised with ``store_url="postgres"`` (the numbers on both)."""
    if getattr(request, "param", "sqlite") == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


def make_sweep(cli: Cli, folder: Path) -> MadeSweep:
    """``evaltune run SUITE --model openai:A --model openai:B --model-name m``: the product's own sweep."""
    suite = folder / "sweep-capitals.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    with ExitStack() as servers:
        url_a = servers.enter_context(answer_server({"m": good_model()}))
        url_b = servers.enter_context(answer_server({"m": odd_model()}))
        code, out, err = cli("run", str(suite), "--model", f"openai:{url_a}", "--model", f"openai:{url_b}",
                             "--model-name", "m")
    assert code == 0, err
    found = re.search(r"sweep (\d+)", out)
    assert found, out
    labels = {f"{variant}@{name}": f"{variant}@openai:{url}" for name, url in (("A", url_a), ("B", url_b))
              for variant in ("plain", "polite")}
    return MadeSweep(int(found.group(1)), labels, out)


@pytest.fixture
def sweep(store: Store, cli: Cli, tmp_path: Path) -> MadeSweep:
    return make_sweep(cli, tmp_path)


def _by_short(made: MadeSweep) -> dict[str, str]:
    return {label: short for short, label in made.labels.items()}


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_matrix_numbers_match_separate_comparisons(store: Store, sweep: MadeSweep) -> None:
    with store.session_scope() as session:
        matrix = build_matrix(session, sweep.sweep_id)
        short = _by_short(sweep)
        assert [short[row.label] for row in matrix.rows] == ["plain@A", "polite@A", "plain@B", "polite@B"]
        assert matrix.baseline == sweep.labels["plain@A"] and matrix.rows[0].baseline
        assert {short[r.label]: r.values["answer_match"].value.value for r in matrix.rows} == ANSWER_MATCH
        # Each cell's value is its run's stored metric: value, interval and n as its summary printed them.
        for row in matrix.rows:
            stored = {m.name: m for m in session.execute(select(RunMetric).where(RunMetric.run_id == row.run_id))
                      .scalars()}
            assert set(row.values) == set(stored)
            for name, value in row.values.items():
                metric = stored[name]
                assert (value.value.value, value.value.ci_low, value.value.ci_high, value.value.n) == (
                    metric.value, metric.ci_low, metric.ci_high, metric.n)
        # The deltas are the pairwise report's, cell by cell; only the q-values and verdicts are the matrix's.
        base_run = matrix.rows[0].run_id
        assert base_run is not None
        keys, p_values = [], []
        for row in matrix.rows[1:]:
            assert row.run_id is not None
            report = build_report(session, base_run, row.run_id)
            assert row.shared_items == report.shared_items == len(CAPITALS)
            assert {m.name for m in report.metrics} == {n for n, v in row.values.items() if v.delta is not None}
            for m in report.metrics:
                delta = row.values[m.name].delta
                assert delta is not None
                assert (delta.delta, delta.ci_low, delta.ci_high, delta.p_value, delta.test) == (
                    m.delta, m.delta_ci_low, m.delta_ci_high, m.p_value, m.test)
                keys.append((row.label, m.name))
                p_values.append(m.p_value)
    assert matrix.tests == sum(not math.isnan(p) for p in p_values)
    for (label, name), q in zip(keys, benjamini_hochberg(p_values), strict=True):
        delta = matrix.row(label).values[name].delta
        assert delta is not None and (delta.q_value == q or (math.isnan(q) and math.isnan(delta.q_value)))
    # By hand: polite@A lost 6 answers and gained none (exact McNemar: 2 * 0.5**6); plain@B lost 9.
    polite_a = matrix.row(sweep.labels["polite@A"]).values["answer_match"].delta
    plain_b = matrix.row(sweep.labels["plain@B"]).values["answer_match"].delta
    assert polite_a is not None and plain_b is not None
    assert (polite_a.delta, polite_a.test, polite_a.p_value) == (pytest.approx(-0.5), "mcnemar", pytest.approx(2 / 64))
    assert (plain_b.delta, plain_b.p_value, plain_b.verdict) == (pytest.approx(-0.75), pytest.approx(2 / 512), "worse")
    assert any(test == "unpaired" for test in [v.delta.test for r in matrix.rows for v in r.values.values()
                                               if v.delta is not None])  # pass_rate:max-words, a run-level rate


def test_best_cell_per_metric_follows_the_metric_direction(store: Store, sweep: MadeSweep) -> None:
    with store.session_scope() as session:
        matrix = build_matrix(session, sweep.sweep_id)
    short = _by_short(sweep)
    best = {c.name: sorted(short[r.label] for r in matrix.rows if r.values[c.name].best) for c in matrix.metrics}
    assert best["answer_match"] == ["plain@A", "polite@B"]  # tied at 1.0
    for column in matrix.metrics:  # by hand: the highest (or lowest) value, every cell tied with it
        values = {short[r.label]: r.values[column.name].value.value for r in matrix.rows}
        top = (max if column.higher_is_better else min)(values.values())
        assert best[column.name] == sorted(k for k, v in values.items() if v == top), column.name


def test_another_baseline_cell_and_its_errors(store: Store, sweep: MadeSweep) -> None:
    with store.session_scope() as session:
        matrix = build_matrix(session, sweep.sweep_id, sweep.labels["polite@B"])
        assert [r.baseline for r in matrix.rows] == [False, False, False, True]
        plain_b = matrix.row(sweep.labels["plain@B"]).values["answer_match"].delta
        assert plain_b is not None and plain_b.delta == pytest.approx(-0.75)
        typo = sweep.labels["polite@B"].replace("polite", "polit")
        with pytest.raises(ReportError, match=f"did you mean '{re.escape(sweep.labels['polite@B'])}'"):
            build_matrix(session, sweep.sweep_id, typo)
        with pytest.raises(ReportError, match="no sweep 99"):
            build_matrix(session, 99)


def test_items_the_cells_disagree_on_carry_each_cells_output(store: Store, sweep: MadeSweep) -> None:
    with store.session_scope() as session:
        matrix = build_matrix(session, sweep.sweep_id)
    # Every cell is right on q02-q04; q01 is plain@B's hostile answer, q05-q12 wrong in plain@B (and q07-q12 in
    # polite@A).
    assert sorted(e.key for e in matrix.examples) == ["q01", *(f"q{i:02d}" for i in range(5, 13))]
    assert matrix.disagreements == len(matrix.examples) == 9
    q01 = next(e for e in matrix.examples if e.key == "q01")
    assert q01.outputs[sweep.labels["plain@B"]] == HOSTILE and q01.question == "What is the capital of Peru?"
    assert q01.outputs[sweep.labels["polite@B"]] == "It is Lima."
    assert q01.values[sweep.labels["plain@B"]]["answer_match"] == 0.0 and "answer_match" in q01.scorers


def test_sweeps_list_and_show_at_the_cli(store: Store, sweep: MadeSweep, cli: Cli) -> None:
    assert "plain@" in sweep.stdout and "answer_match" in sweep.stdout  # `run` printed the matrix
    code, out, err = cli("sweeps", "list")
    assert code == 0, err
    assert re.search(rf"^{sweep.sweep_id}\s+completed\s+4/4\s+sweep-capitals\s+plain, polite", out, re.M), out
    code, out, err = cli("sweeps", "show", str(sweep.sweep_id))
    assert code == 0, err
    assert f"baseline: {sweep.labels['plain@A']}" in out
    row = next(line for line in out.splitlines() if sweep.labels["polite@B"] in line and "completed" in line)
    assert "1.000 [" in row and " *" in row  # polite@B ties for the best answer_match
    code, out, err = cli("sweeps", "show", str(sweep.sweep_id), "--json", "--baseline", sweep.labels["polite@B"])
    assert code == 0, err
    data = json.loads(out)
    with store.session_scope() as session:
        expected = matrix_record(build_matrix(session, sweep.sweep_id, sweep.labels["polite@B"]))
    assert data == json.loads(json.dumps(expected)) and data["schema_version"] == 1
    assert data["baseline"] == sweep.labels["polite@B"]


def test_report_sweep_in_every_format(store: Store, sweep: MadeSweep, cli: Cli, tmp_path: Path) -> None:
    baseline = sweep.labels["polite@A"]
    for fmt in ("html", "markdown", "json"):
        code, _out, err = cli("report", "--sweep", str(sweep.sweep_id), "--baseline", baseline, "--format", fmt,
                              "-o", str(tmp_path / f"matrix.{fmt}"))
        assert code == 0, err
    page = (tmp_path / "matrix.html").read_text(encoding="utf-8")
    assert "<script" not in page.replace("&lt;script", "") and "&lt;script&gt;window.__pwned=1" in page
    assert "Content-Security-Policy" in page and 'class="best"' in page
    markdown = (tmp_path / "matrix.markdown").read_text(encoding="utf-8")
    assert f"| {baseline} (baseline) |" in markdown.replace("\\|", "|") and "<script" not in markdown
    data = json.loads((tmp_path / "matrix.json").read_text(encoding="utf-8"))
    code, out, _err = cli("sweeps", "show", str(sweep.sweep_id), "--json", "--baseline", baseline)
    assert data == json.loads(out)


@pytest.mark.parametrize(("args", "words"), [
    (["sweeps", "show", "99"], ["no sweep 99", "evaltune sweeps list"]),
    (["sweeps", "show", "1", "--baseline", "plain@nowhere"], ["--baseline", "no cell 'plain@nowhere'",
                                                              "its cells: plain@openai:"]),
    (["report", "--sweep", "1", "--baseline", "polit@x"], ["--baseline", "no cell 'polit@x'"]),
    (["report", "1", "2", "--sweep", "1"], ["--sweep", "without run ids"]),
    (["report", "--baseline", "plain@x"], ["--baseline CELL goes with --sweep"]),
])
def test_bad_sweep_arguments_exit_2_and_say_why(store: Store, sweep: MadeSweep, cli: Cli, args: list[str],
                                               words: list[str]) -> None:
    assert sweep.sweep_id == 1
    code, out, err = cli(*args)
    assert code == 2 and not out, (out, err)
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err


def test_no_sweeps_yet(store: Store, cli: Cli) -> None:
    code, out, _err = cli("sweeps", "list")
    assert code == 0 and "no sweeps yet" in out


def test_a_sweep_cut_short_shows_its_pending_cells(store: Store, cli: Cli, tmp_path: Path) -> None:
    """The second model's endpoint is down: the sweep fails after the first model's cells, and its matrix shows
    the cells that have runs with their numbers and the rest as pending."""
    suite = tmp_path / "sweep-capitals.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    with answer_server({"m": good_model()}) as url:
        code, _out, err = cli("run", str(suite), "--model", f"openai:{url}", "--model",
                              "openai:http://127.0.0.1:9/v1", "--model-name", "m")
    assert code != 0, err
    with store.session_scope() as session:
        sweep = session.execute(select(Sweep)).scalar_one()
        assert sweep.status == "failed"
        matrix = build_matrix(session, sweep.id)
        pending_baseline = build_matrix(session, sweep.id, matrix.rows[3].label)
    # Against a cell without a run there is nothing to compare: values, but no deltas and no tests.
    assert pending_baseline.tests == 0 and pending_baseline.rows[0].values["answer_match"].value.value == 1.0
    assert all(v.delta is None for r in pending_baseline.rows for v in r.values.values())
    assert [r.status for r in matrix.rows] == ["completed", "completed", "pending", "pending"]
    assert matrix.rows[2].values == {} and matrix.rows[1].values["answer_match"].delta is not None
    code, out, err = cli("sweeps", "show", str(sweep.id))
    assert code == 0, err
    assert re.search(r"plain@openai:http://127\.0\.0\.1:9/v1\s+-\s+pending", out), out


def test_the_app_sweeps_page_shows_the_matrix_and_outputs_as_text(store: Store, sweep: MadeSweep) -> None:
    with store.session_scope() as session:
        seed_users(session, {"view": "viewer"})
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "sweeps"
    at.run()
    at.text_input(key="login_name").input("view")
    at.text_input(key="login_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    values = next(df.value for df in at.dataframe if "answer_match ↑" in df.value and "run" in df.value)
    cells = values["cell"].tolist()
    assert cells[0] == sweep.labels["plain@A"] + " (baseline)" and len(cells) == 4
    polite_b = values["answer_match ↑"].tolist()[3]
    assert polite_b.startswith("1.000 [") and polite_b.endswith(" ★")
    at.selectbox(key="sweeps_baseline").set_value(sweep.labels["polite@B"])
    at.run()
    deltas = next(df.value for df in at.dataframe if "shared items" in df.value)
    assert deltas["cell"].tolist() == [sweep.labels[k] for k in ("plain@A", "polite@A", "plain@B")]
    assert deltas["answer_match ↑"].tolist()[2].startswith("-0.750 [")
    at.selectbox(key="sweeps_item").set_value("q01")
    at.run()
    assert HOSTILE in [c.value for c in at.code]  # verbatim, in a code block
    for element in [*at.markdown, *at.caption]:
        assert "onerror" not in element.value and "<script" not in element.value
        assert "](javascript" not in element.value

