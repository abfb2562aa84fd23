"""Per-item assertions in a suite: loaded and checked with the file, stored with the item, checked after generation
and stored as scores and run metrics, shown by the summary, ``runs show`` and the report.

The runs use the tiny model (random weights: its outputs are gibberish), so the assertions are chosen to pass or
fail on any text: a text no output holds, a regex every text matches, a length bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text, update

from evaltune.db import Store, open_store
from evaltune.db import queries as q
from evaltune.db.engine import alembic_config, upgrade
from evaltune.db.evaluation import Generation, RunMetric, Score, SuiteItem
from evaltune.harness.loaders import load_suite
from evaltune.harness.suite import SuiteError, item_to_dict
from tests.conftest import Cli

SUITE = """\
name: support-bot
defaults:
  assert:
    - {type: not-contains, value: "As an AI language model"}
    - {type: max-words, value: 500}
items:
  - id: never
    input: Return a JSON object for refund order 812.
    assert:
      - {type: max-chars, value: 100000, weight: 2}
      - {type: contains, value: "zz-no-output-holds-this-zz", metric: must-have}
  - id: anything
    input: What is the capital of France?
    assert:
      - {type: regex, value: "^"}
  - id: judged
    input: Answer in one sentence.
    assert:
      - {type: llm-rubric, value: "Answers in one sentence."}
  - id: unweighted
    input: Say hello.
    assert:
      - {type: equals, value: "exactly this and nothing else", weight: 0}
  - id: plain
    input: What is two plus two?
    choices: ["3", "4"]
    gold: [1]
"""
# Per item: its assertions' verdicts in order (the two defaults first), and the item's.
EXPECTED = {
    "never": ([1.0, 1.0, 1.0, 0.0], 0.0),
    "anything": ([1.0, 1.0, 1.0], 1.0),
    "judged": ([1.0, 1.0, None], 1.0),  # no judge model: the rubric is skipped, the defaults count
    "unweighted": ([1.0, 1.0, 0.0], 1.0),  # weight 0: reported, never fails the item
}

LENGTHS = """\
name: lengths
items:
""" + "".join(f"""  - id: q{n}
    input: "{question}"
    assert:
      - {{type: max-chars, value: 12}}
""" for n, question in enumerate(["Hello there.", "What is the capital of France?", "Count to ten.",
                                  "Name a colour.", "Tell me a story.", "Why is the sky blue?"]))


@pytest.fixture(autouse=True)
def _no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)  # llm-rubric is skipped, whatever the caller's setting


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


# Loading ---------------------------------------------------------------------------------------------------------

def test_defaults_come_first_on_every_item_that_generates_text(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, "support.yaml", SUITE))
    labels = {item.id: [a.label for a in item.assertions] for item in suite.items}
    assert labels == {"never": ["not-contains", "max-words", "max-chars", "contains"],
                      "anything": ["not-contains", "max-words", "regex"],
                      "judged": ["not-contains", "max-words", "llm-rubric"],
                      "unweighted": ["not-contains", "max-words", "equals"],
                      "plain": []}  # a multiple-choice item generates no text to check
    never = suite.items[0].assertions
    assert (never[2].weight, never[3].metric, never[3].value) == (2.0, "must-have", "zz-no-output-holds-this-zz")


def test_an_assertion_is_part_of_the_suite_version(tmp_path: Path) -> None:
    base = load_suite(_write(tmp_path, "a.yaml", SUITE)).content_hash
    changed = load_suite(_write(tmp_path, "b.yaml", SUITE.replace("value: 500", "value: 400"))).content_hash
    weighted = load_suite(_write(tmp_path, "c.yaml", SUITE.replace("weight: 2", "weight: 3"))).content_hash
    assert len({base, changed, weighted}) == 3
    # An item without assertions hashes as it did before items could carry them: its suite keeps its version.
    assert all("assert" not in item_to_dict(item) for item in load_suite("smoke").items)


def test_jsonl_and_csv_items_carry_assertions(tmp_path: Path) -> None:
    assertions = [{"type": "icontains", "value": "paris"}, {"type": "max-words", "value": 20}]
    jsonl = _write(tmp_path, "items.jsonl", json.dumps({"id": "a", "input": "Capital of France?",
                                                        "assert": assertions}) + "\n")
    csv_text = 'id,input,assert\na,Capital of France?,"' + json.dumps(assertions).replace('"', '""') + '"\n'
    csv_file = _write(tmp_path, "items.csv", csv_text)
    for path in (jsonl, csv_file):
        (item,) = load_suite(path).items
        assert [a.to_dict() for a in item.assertions] == assertions, path


@pytest.mark.parametrize(("body", "field", "words"), [
    ("items: [{id: a, input: hi, assert: [{type: contians, value: x}]}]", "assert[0].type", "did you mean"),
    ("items: [{id: a, input: hi, assert: [{type: contains, value: x}, {type: regex, value: '(x'}]}]",
     "assert[1].value", "invalid regular expression"),
    ("items: [{id: a, input: hi, assert: [{type: is-json, schema: {type: 7}}]}]", "assert[0].schema",
     "not a valid JSON Schema"),
    ("items: [{id: a, input: hi, assert: [{type: contains}]}]", "assert[0].value", "needs 'value'"),
    ("items: [{id: a, input: hi, assert: {type: contains, value: x}}]", "assert", "must be a list of assertions"),
])
def test_a_bad_assertion_names_the_file_the_item_and_the_field(tmp_path: Path, body: str, field: str,
                                                                words: str) -> None:
    path = _write(tmp_path, "bad.yaml", f"name: bad\n{body}\n")
    with pytest.raises(SuiteError) as raised:
        load_suite(path)
    assert (raised.value.item, raised.value.field) == ("a", field)
    assert str(path) in str(raised.value) and words in str(raised.value)


@pytest.mark.parametrize(("defaults", "field", "words"), [
    ("{asert: []}", "defaults.asert", "did you mean 'assert'"),
    ("[{type: contains, value: x}]", "defaults", "must be a mapping"),
    ("{assert: [{type: max-words, value: 3}, {type: is-json, schema: {type: objct}}]}", "defaults.assert[1].schema",
     "not a valid JSON Schema"),
])
def test_bad_defaults_name_the_file_and_the_field(tmp_path: Path, defaults: str, field: str, words: str) -> None:
    path = _write(tmp_path, "bad.yaml", f"name: bad\ndefaults: {defaults}\nitems: [{{id: a, input: hi}}]\n")
    with pytest.raises(SuiteError) as raised:
        load_suite(path)
    assert (raised.value.item, raised.value.field) == (None, field)
    assert str(path) in str(raised.value) and words in str(raised.value)


def test_suites_validate_refuses_a_bad_assertion_with_one_line(tmp_path: Path, cli: Cli) -> None:
    path = _write(tmp_path, "bad.yaml", "name: bad\nitems:\n  - id: q1\n    input: hi\n"
                                        "    assert: [{type: regex, value: '[0-9'}]\n")
    code, _out, err = cli("suites", "validate", str(path))
    assert code == 2
    assert f"{path}:3: item q1: field 'assert[0].value'" in err and len(err.strip().splitlines()) == 1


# The store -------------------------------------------------------------------------------------------------------

def test_migration_0009_adds_the_column_and_gives_stored_items_none(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.session_scope() as s:
            q.get_or_create_suite(s, name="old", content_hash="h-old", items=[{"key": "q1", "input": "hi"}])
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0008")  # as stored before items had assertions
            assert "assertions" not in list(conn.execute(text("SELECT * FROM suite_items")).keys())
        upgrade(store.engine)
        with store.session_scope() as s:
            assert s.scalars(select(SuiteItem.assertions)).all() == [[]]
            suite = q.get_or_create_suite(s, name="new", content_hash="h-new", items=[
                {"key": "q1", "input": "hi", "assertions": [{"type": "contains", "value": "812"}]}])
            assert suite.items[0].assertions == [{"type": "contains", "value": "812"}]
    finally:
        store.close()


def _scores(store: Store, run_id: int) -> dict[str, dict[str, tuple[float | None, dict[str, Any]]]]:
    """item key -> scorer -> (value, details) of the run's scores."""
    with store.session_scope() as s:
        rows = s.execute(select(SuiteItem.key, Score.scorer, Score.value, Score.details)
                         .join(Generation, Generation.id == Score.generation_id)
                         .join(SuiteItem, SuiteItem.id == Generation.item_id)
                         .where(Score.run_id == run_id)).all()
    found: dict[str, dict[str, tuple[float | None, dict[str, Any]]]] = {}
    for key, scorer, value, details in rows:
        found.setdefault(key, {})[scorer] = (value, details)
    return found


def _metrics(store: Store, run_id: int) -> dict[str, RunMetric]:
    with store.session_scope() as s:
        rows = s.scalars(select(RunMetric).where(RunMetric.run_id == run_id)).all()
        s.expunge_all()
    return {m.name: m for m in rows}


def test_a_run_stores_each_assertion_the_verdicts_and_pass_rate(store: Store, tmp_path: Path,
                                                                 tiny_model_dir: Path, cli: Cli) -> None:
    suite = _write(tmp_path, "support.yaml", SUITE)
    code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "8")
    assert code == 0, err
    scores = _scores(store, 1)
    assert "plain" not in scores or not any(s.startswith("assertion") for s in scores["plain"])
    for key, (each, verdict) in EXPECTED.items():
        per_item = scores[key]
        assert [per_item[f"assertion:{k}"][0] for k in range(1, len(each) + 1)] == each, key
        assert per_item["assertions"][0] == verdict, key
    never = scores["never"]
    assert never["assertions"][1] == {"score": pytest.approx(4 / 5), "failed": [4], "skipped": []}
    assert never["assertion_score"][0] == pytest.approx(4 / 5)  # weights 1, 1, 2 passed; 1 failed
    assert never["assertion:3"][1]["weight"] == 2.0 and never["assertion:4"][1]["metric"] == "must-have"
    assert never["assertion:4"][1]["assertion"] == {"type": "contains", "value": "zz-no-output-holds-this-zz",
                                                    "metric": "must-have"}
    assert never["assertion:4"][1]["type"] == "contains" and never["assertion:4"][1]["reason"]
    assert scores["judged"]["assertions"][1]["skipped"] == [3]

    metrics = _metrics(store, 1)
    pass_rate = metrics["pass_rate"]
    assert (pass_rate.scorer, pass_rate.family, pass_rate.higher_is_better) == ("assertions", "quality", True)
    assert (pass_rate.value, pass_rate.n) == (0.75, 4) and pass_rate.ci_low < 0.75 < pass_rate.ci_high
    assert metrics["pass_rate:contains"].value == 0.0 and metrics["pass_rate:not-contains"].value == 1.0
    assert metrics["pass_rate:must-have"].value == 0.0 and metrics["assertion_score"].scorer == "assertion_score"
    for shown in (out, cli("runs", "show", "1")[1]):
        assert "pass_rate ↑" in shown and "pass_rate:not-contains" in shown and "pass_rate:must-have" in shown
        assert "1 assertion skipped: set EVALTUNE_JUDGE_MODEL=" in shown and "to enable llm-rubric" in shown


def test_rescoring_replaces_the_assertion_rows(store: Store, tmp_path: Path, tiny_model_dir: Path,
                                               cli: Cli) -> None:
    suite = _write(tmp_path, "support.yaml", SUITE)
    assert cli("run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "8")[0] == 0
    before, metrics_before = _scores(store, 1), _metrics(store, 1)
    with store.session_scope() as s:  # as if an older evaltune had judged them otherwise
        s.execute(update(Score).where(Score.scorer.in_(["assertions", "assertion:1"])).values(value=0.5))
        s.execute(update(RunMetric).where(RunMetric.name == "pass_rate").values(value=0.5))
    code, _out, err = cli("score", "1", "--scorers", "answer_match")
    assert code == 0, err
    after = _scores(store, 1)
    assert {key: {name: v for name, v in per_item.items() if name != "answer_match"} for key, per_item in
            after.items() if key in before} == before
    metrics = _metrics(store, 1)
    assert {name: (m.value, m.n) for name, m in metrics.items() if name != "answer_match"} == {
        name: (m.value, m.n) for name, m in metrics_before.items()}


def test_a_suite_without_assertions_stores_none_of_their_rows(store: Store, tiny_model_dir: Path,
                                                              cli: Cli) -> None:
    assert cli("run", "smoke", "--model", str(tiny_model_dir), "--limit", "3")[0] == 0
    with store.session_scope() as s:
        scorers = set(s.scalars(select(Score.scorer).distinct()))
        names = set(s.scalars(select(RunMetric.name)))
    assert not {n for n in scorers | names if n.startswith(("assertion", "pass_rate"))}


def test_runs_outputs_lists_the_verdict_not_each_assertion(store: Store, tmp_path: Path, tiny_model_dir: Path,
                                                           cli: Cli) -> None:
    suite = _write(tmp_path, "support.yaml", SUITE)
    assert cli("run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "8")[0] == 0
    code, out, err = cli("runs", "outputs", "1", "--format", "jsonl")
    assert code == 0, err
    records = {r["item"]: r for r in map(json.loads, out.splitlines())}
    assert not any(name.startswith("assertion:") for r in records.values() for name in r["scores"])
    assert records["never"]["failed"] == ["assertions"] and records["anything"]["failed"] == []
    code, out, _err = cli("runs", "outputs", "1", "--failures", "--format", "jsonl")
    assert [json.loads(line)["item"] for line in out.splitlines()] == ["never"]
    code, _out, err = cli("runs", "outputs", "1", "--scorer", "assertion:1")
    assert code == 2 and "has no scores from 'assertion:1'" in err
    assert "assertions" in err.split("its scorers:")[1] and "assertion:" not in err.split("its scorers:")[1]


def test_the_report_lists_pass_rate_flips_with_both_outputs(store: Store, tmp_path: Path, tiny_model_dir: Path,
                                                            cli: Cli) -> None:
    suite = _write(tmp_path, "lengths.yaml", LENGTHS)
    for tokens in ("1", "24"):
        code, _out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", tokens)
        assert code == 0, err
    with store.session_scope() as s:
        outputs = {(run, key): output for run, key, output in s.execute(
            select(Generation.run_id, SuiteItem.key, Generation.output)
            .join(SuiteItem, SuiteItem.id == Generation.item_id))}
    keys = sorted({key for _run, key in outputs})
    passed = {run: {key: len(outputs[run, key]) <= 12 for key in keys} for run in (1, 2)}
    flipped = {key for key in keys if passed[1][key] != passed[2][key]}
    assert flipped, "the two lengths should give different verdicts on some item"
    code, out, err = cli("report", "1", "2", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    (row,) = [m for m in report["metrics"] if m["name"] == "pass_rate"]
    assert row["test"] != "unpaired"  # an item mean: compared item by item (McNemar)
    flips = {f["key"]: f for f in report["flipped"] if "pass_rate" in f["lost"] + f["gained"]}
    assert set(flips) == flipped
    for key, flip in flips.items():
        assert (flip["baseline_output"], flip["candidate_output"]) == (outputs[1, key], outputs[2, key])
        assert ("pass_rate" in flip["lost"]) == passed[1][key]
    code, markdown, _err = cli("report", "1", "2")
    assert "pass_rate" in markdown and "Flipped items" in markdown
