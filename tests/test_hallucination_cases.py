"""grounded_hallucination on simple cases (issue 21): structured outputs are checked as what they are, an answer that
matches its reference is never flagged, and an item with neither reference nor context gets a reference-free
signal or an explicit, counted "not applicable". The cases live in tests/data/hallucination_cases.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evaltune.db import Store
from evaltune.db.evaluation import Score, SuiteItem
from evaltune.metrics.quantities import quantities_in
from evaltune.metrics.records import Example, ScoreResult
from evaltune.metrics.registry import get_scorer
from evaltune.metrics.segments import output_units
from evaltune.metrics.sentences import split_sentences
from tests.conftest import Cli
from tests.fixtures.answer_server import serving
from tests.fixtures.fake_judge import JudgeServer, forget_judge_settings, four_with_logprobs

CASES = Path(__file__).parent / "data" / "hallucination_cases.jsonl"
RIVER = "The Varnholt River is 412 km long and flows through Bavaria into the Danube."


def read_cases() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if "output" in row]  # the first line says what the file is


def as_example(case: dict[str, Any]) -> Example:
    references = case.get("references", [case["reference"]] if "reference" in case else [])
    return Example(item_id=case["id"], prompt=case["prompt"], output=case["output"], references=tuple(references),
                   context=case.get("context"), samples=tuple(case.get("samples", ())),
                   expect_abstention=case.get("expect_abstention", False))


def verdict(result: ScoreResult) -> str:
    if result.value is None:
        return "not_applicable"
    return "flagged" if result.details["hallucinated"] else "not_flagged"


@pytest.fixture(scope="module")
def scored() -> dict[str, ScoreResult]:
    """Every case scored in one batch, as a run scores its outputs."""
    cases = read_cases()
    results = get_scorer("grounded_hallucination").score_batch([as_example(c) for c in cases])
    return {case["id"]: result for case, result in zip(cases, results, strict=True)}


@pytest.mark.parametrize("case", read_cases(), ids=lambda case: case["id"])
def test_each_case_gets_its_expected_verdict(case: dict[str, Any], scored: dict[str, ScoreResult]) -> None:
    result = scored[case["id"]]
    assert verdict(result) == case["expect"], f"{case['why']}: {result.details}"
    if "signal" in case:
        assert result.details["signal"] == case["signal"]
    if result.value is None:
        assert result.details["reason"]  # never a silent gap: it says why


def test_the_corpus_covers_the_issue_and_every_kind() -> None:
    cases = {case["id"]: case for case in read_cases()}
    assert {"json-issue-exact", "boiling-point-issue", "river-no-source", "age-wrong-number", "code-equal",
            "list-bullets-vs-comma-reference"} <= set(cases)
    assert {case["expect"] for case in cases.values()} == {"flagged", "not_flagged", "not_applicable"}
    assert {case.get("signal") for case in cases.values()} >= {"reference_match", "structure", "detector",
                                                              "abstention", "self_consistency"}


def test_a_match_says_which_reference_and_how(scored: dict[str, ScoreResult]) -> None:
    boiling = scored["boiling-point-issue"].details
    assert boiling["match"] == "quantity" and boiling["matched_reference"] == "100 degrees Celsius"
    assert scored["json-reordered"].details["match"] == "json"
    assert scored["list-bullets-vs-comma-reference"].details["match"] == "list"
    wrong = scored["json-wrong-value"].details["parts"]
    assert {"unit": "age: 34", "verdict": "contradicted", "expected": "31"} in wrong


# --- the units an output is checked in ---


def test_json_is_checked_leaf_by_leaf_never_by_its_brackets() -> None:
    assert output_units('{"name": "Ana", "age": 31}') == ["name: Ana", "age: 31"]
    assert output_units('{"customer": {"name": "Ana", "tags": ["vip"]}, "active": true}') == [
        "customer.name: Ana", "customer.tags[]: vip", "active: true"]
    assert split_sentences('{"name": "Ana",\n "age": 31\n}')[-1] == "}"  # what the prose splitter did


def test_code_is_checked_in_lines_never_cut_at_a_full_stop() -> None:
    code = "```python\nimport os.path\n\n# the config file\npath = os.path.join(home, 'a.cfg')\n```"
    assert output_units(code) == ["import os.path", "path = os.path.join(home, 'a.cfg')"]
    mixed = "Use this:\n```js\nconst x = a.b();\n}\n```\nIt returns the sum. Then stop."
    assert output_units(mixed) == ["Use this:", "const x = a.b();", "It returns the sum.", "Then stop."]


def test_list_items_are_units_without_their_markers() -> None:
    assert output_units("The cities:\n1. Paris\n2. Lyon\n- Marseille") == ["The cities:", "Paris", "Lyon",
                                                                              "Marseille"]


def test_prose_is_cut_into_sentences_as_before() -> None:
    text = "Dr. Smith paid $3.50 in the U.S. yesterday. He left! Did he? Yes."
    assert output_units(text) == split_sentences(text)
    assert output_units("}") == [] and output_units("...") == []


@pytest.mark.parametrize(("a", "b", "equal"), [
    ("100 °C", "212 °F", True),
    ("100 degrees Celsius", "373.15 kelvin", True),
    ("1,000 m", "1 km", True),
    ("2 kg", "2000 grams", True),
    ("1 mile", "1,609.344 m", True),
    ("1 m", "39.4 inches", False),  # a rounded conversion is not an equal quantity
    ("100 °C", "100 °F", False),
    ("5 km", "5 minutes", False),
])
def test_numbers_with_units_compare_by_value(a: str, b: str, equal: bool) -> None:
    [first], [second] = quantities_in(a), quantities_in(b)
    assert first.equals(second) is equal


# --- no reference, no context ---


RUN_SUITE = """\
name: simple-cases
generation: {max_new_tokens: 6}
scorers: [grounded_hallucination]
items:
  - id: capital
    input: What is the capital of France?
    references: [Paris]
  - id: bridge
    input: How long is the Harlow Bridge?
    context: The Harlow Bridge is 412 metres long.
  - id: river
    input: How long is the Varnholt River?
"""


def stored_scores(store: Store, run_id: int) -> dict[str, list[dict[str, Any]]]:
    """Each item's grounded_hallucination details in ``run_id``, as stored."""
    with store.session_scope() as session:
        rows = session.execute(select(SuiteItem.key, Score.details).join(Score, Score.item_id == SuiteItem.id)
                               .where(Score.run_id == run_id, Score.scorer == "grounded_hallucination"))
        found: dict[str, list[dict[str, Any]]] = {}
        for key, details in rows:
            found.setdefault(key, []).append(details)
        return found


def test_a_run_counts_items_it_could_not_check_and_a_judge_or_samples_check_them(
        store: Store, tmp_path: Path, tiny_model_dir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    forget_judge_settings(monkeypatch)
    suite = tmp_path / "simple.yaml"
    suite.write_text(RUN_SUITE, encoding="utf-8")
    code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir))
    assert code == 0, err
    assert "grounded_hallucination: 1 of 3 outputs not checked: no reference or context" in out
    assert stored_scores(store, 1)["river"][0]["not_applicable"]
    code, out, err = cli("runs", "show", "1")
    assert code == 0 and "grounded_hallucination_not_applicable" in out and "1 of 3 outputs not checked" in out

    # The model's other samples of the river item check it by self-consistency.
    code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--samples", "2", "--temperature", "1")
    assert code == 0, err
    assert {d["signal"] for d in stored_scores(store, 2)["river"]} == {"self_consistency"}
    code, report, err = cli("report", "1", "2", "--format", "json")
    assert code == 0, err
    row = next(m for m in json.loads(report)["metrics"] if m["name"] == "grounded_hallucination_not_applicable")
    assert row["baseline"]["value"] == pytest.approx(1 / 3) and row["candidate"]["value"] == 0.0

    # A judge named at re-scoring grades the river item's factual accuracy: nothing is left unchecked.
    with serving(JudgeServer(four_with_logprobs, logprobs=False)) as server:
        monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", f"openai:{server.url}")
        monkeypatch.setenv("EVALTUNE_JUDGE_MODEL_NAME", "judge-a")
        code, out, err = cli("score", "1", "--scorers", "grounded_hallucination")
    assert code == 0, err
    [river] = stored_scores(store, 1)["river"]
    assert river["signal"] == "judge" and river["score"] == 4 and not river["hallucinated"]  # 1 - (4 - 1) / 4
    assert len(server.requests) == 1 and "1 of 3 outputs not checked" not in out
    assert "judge" not in {d["signal"] for key, ds in stored_scores(store, 1).items() if key != "river" for d in ds}


def test_items_not_checked_are_counted_in_the_run_metrics(scored: dict[str, ScoreResult]) -> None:
    results = list(scored.values())
    metrics = {m.name: m for m in get_scorer("grounded_hallucination").aggregate([], results)}
    missing = metrics["grounded_hallucination_not_applicable"]
    assert missing.details["count"] == 2 and missing.n == len(results)
    assert missing.details["checked"] == metrics["grounded_hallucination_rate"].n == len(results) - 2
    assert sum(metrics["grounded_hallucination"].details["signals"].values()) == len(results) - 2


# --- at the command line ---

SIX = [  # the issue's new user's suite: six items, one real hallucination (the invented river), no reference there
    {"id": "json", "prompt": "Return the customer as JSON with name and age.", "output": '{"name": "Ana", "age": 31}',
     "reference": '{"name": "Ana", "age": 31}'},
    {"id": "boiling", "prompt": "At what temperature does water boil at sea level?",
     "output": "Water boils at 100 °C at sea level.", "references": ["100 degrees Celsius", "212 °F"]},
    {"id": "river", "prompt": "How long is the Varnholt River?", "output": RIVER},
    {"id": "code", "prompt": "Write a Python function add(a, b).",
     "output": "```python\ndef add(a, b):\n    return a + b\n```", "reference": "def add(a, b):\n    return a + b"},
    {"id": "list", "prompt": "Name the three largest cities of France.", "output": "- Paris\n- Marseille\n- Lyon",
     "reference": "Paris, Lyon and Marseille"},
    {"id": "wrong", "prompt": "How old is Ana?", "output": "Ana is 32 years old.", "reference": "31"},
]
RIVER_SAMPLES = ["The Varnholt River is 230 km long and flows through Austria into the Inn.",
                 "The Varnholt is a 95-mile river in Saxony that joins the Elbe near Dresden."]


def metric_rows(table: str) -> dict[str, tuple[str, str]]:
    """metric -> (value, n) from the metrics table ``evaltune score`` prints."""
    rows = {}
    for line in table.splitlines():
        if line.startswith("grounded_hallucination"):
            cells = line.split()  # name, arrow, family, value, "[low,", "high]", n, ...
            rows[cells[0]] = (cells[3], cells[6])
    return rows


def test_score_shows_the_rate_over_checked_items_and_the_not_applicable_count(cli: Cli, tmp_path: Path) -> None:
    suite = tmp_path / "six.jsonl"
    suite.write_text("".join(json.dumps(item) + "\n" for item in SIX), encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    code, table, err = cli("score", "--input", str(suite), "--scorers", "grounded_hallucination", "--output", str(out))
    assert code == 0, err
    rows = metric_rows(table)
    assert rows["grounded_hallucination_rate"] == ("0.200", "5")  # the wrong age, of the 5 checkable (not 0.667)
    assert rows["grounded_hallucination_not_applicable"] == ("0.167", "6")  # the river: 1 of 6
    assert "grounded_hallucination: 1 of 6 outputs not checked: no reference or context" in table
    assert "its mean and rate cover the 5 outputs checked" in table
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["grounded_hallucination"] for row in scored] == [0.0, 0.0, None, 0.0, 0.0, 1.0]

    # With the model's other samples of the river item, self-consistency checks it: every item is checked.
    with_samples = [dict(item, samples=RIVER_SAMPLES) if item["id"] == "river" else item for item in SIX]
    suite.write_text("".join(json.dumps(item) + "\n" for item in with_samples), encoding="utf-8")
    code, table, err = cli("score", "--input", str(suite), "--scorers", "grounded_hallucination", "--output", str(out))
    assert code == 0, err
    rows = metric_rows(table)
    assert rows["grounded_hallucination_rate"] == ("0.333", "6")  # the river and the wrong age
    assert rows["grounded_hallucination_not_applicable"] == ("0.000", "6") and "not checked" not in table
