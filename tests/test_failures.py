"""``evaltune runs show RUN --failures``: each failed assertion with its item, type, the assertion as written, the
output and the reason; a count line; ``--json``; and a run without assertions says so.

Runs come through the real ``evaltune run`` on the tiny model (gibberish, at most 8 tokens), so the assertions
below pass or fail by construction: 8 tokens are never 50 words, never a sentence about Paris, and always under
50 words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from evaltune.db.engine import Store
from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.reports.failures import FailedAssertion, failure_block
from evaltune.reports.outputs import shorten
from evaltune.reports.outputs_format import one_line
from tests.conftest import Cli

SUITE = """\
name: failures-check
generation: {max_new_tokens: 8, temperature: 0.0}
defaults:
  assert:
    - {type: not-contains, value: "As an AI language model"}
items:
  - id: fails-twice
    input: What is the capital of France?
    assert:
      - {type: equals, value: "Paris is the capital of France."}
      - {type: min-words, value: 50}
  - id: passes
    input: Name a colour.
    assert:
      - {type: max-words, value: 50}
  - id: soft
    input: Count to three.
    assert:
      - {type: min-words, value: 50, weight: 0}
      - {type: max-words, value: 50}
  - id: rubric
    input: Say hello.
    assert:
      - {type: llm-rubric, value: "Greets the user."}
"""

def _run(cli: Cli, tmp_path: Path, model: Path, suite: str, *options: str) -> int:
    path = tmp_path / "suite.yaml"
    path.write_text(suite, encoding="utf-8")
    code, out, err = cli("run", str(path), "--model", str(model), *options)
    assert code == 0, err
    return int(out.split()[1].rstrip(":"))  # "run N: suite ..."


@pytest.fixture
def run_id(store: Store, tmp_path: Path, tiny_model_dir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)  # llm-rubric is skipped without a judge
    return _run(cli, tmp_path, tiny_model_dir, SUITE)


def _outputs(store: Store, run_id: int) -> dict[str, str]:
    with store.sessions.begin() as session:
        rows = session.execute(select(SuiteItem.key, Generation.output).join(Generation.item)
                               .where(Generation.run_id == run_id)).all()
    return {key: output for key, output in rows}


def test_each_failed_assertion_with_item_type_expected_got_and_reason(store: Store, run_id: int, cli: Cli) -> None:
    code, out, err = cli("runs", "show", str(run_id), "--failures")
    assert code == 0, err
    outputs = _outputs(store, run_id)
    blocks = out.split("\n\n")[0].split("\n")
    # Suite order, then the item's order (the defaults' not-contains is assertion 1); a weight-0 failure is listed
    # and marked. Each block: item and type, expected as written, got, reason.
    heads = [line for line in blocks if not line.startswith(" ")]
    assert heads == ["fails-twice  equals (assertion 2)", "fails-twice  min-words (assertion 3)",
                     "soft  min-words (assertion 2) (weight 0: reported, does not fail the item)"]
    assert "    expected  {type: equals, value: Paris is the capital of France.}" in blocks
    assert "    expected  {type: min-words, value: 50}" in blocks
    got = [line.removeprefix("    got       ") for line in blocks if line.startswith("    got")]
    shown = {key: shorten(one_line(output), 160) or "(empty output)" for key, output in outputs.items()}
    assert got == [shown["fails-twice"]] * 2 + [shown["soft"]]
    reasons = [line for line in blocks if line.startswith("    reason")]
    assert len(reasons) == 3 and all(len(line) > len("    reason    ") + 3 for line in reasons)
    assert "50" in reasons[1]  # the reason says what was wanted
    # The count: 3 failed assertions, in 1 of 4 outputs (soft's failure has weight 0); pass_rate 3/4 with its CI.
    assert "3 failed assertions in 1 of 4 outputs of run" in out
    assert "pass_rate 0.750 [" in out
    assert "1 skipped: llm-rubric:" in out and "EVALTUNE_JUDGE_MODEL" in out


def test_failures_as_json(store: Store, run_id: int, cli: Cli) -> None:
    code, out, err = cli("runs", "show", str(run_id), "--failures", "--json")
    assert code == 0, err
    data = json.loads(out)
    outputs = _outputs(store, run_id)
    assert data["schema_version"] == 1 and data["run_id"] == run_id and data["has_assertions"] is True
    assert (data["outputs"], data["passed_outputs"], data["failed_outputs"], data["unjudged_outputs"]) == (4, 3, 1, 0)
    assert data["failed_assertions"] == 3 and data["skipped_assertions"] == 1
    assert data["pass_rate"]["value"] == pytest.approx(0.75) and data["pass_rate"]["n"] == 4
    first = data["failures"][0]
    assert first["item"] == "fails-twice" and first["type"] == "equals" and first["assertion_number"] == 2
    assert first["assertion"] == {"type": "equals", "value": "Paris is the capital of France."}
    assert yaml.safe_load(first["expected"]) == first["assertion"]  # "as written" reads back as the assertion
    assert first["output"] == outputs["fails-twice"] and first["reason"]
    assert [f["weight"] for f in data["failures"]] == [1.0, 1.0, 0.0]
    assert data["failures"][1]["measured"] is not None  # min-words measured the words


def test_a_run_without_assertions_says_so(store: Store, tmp_path: Path, tiny_model_dir: Path, cli: Cli) -> None:
    plain = "name: plain\ngeneration: {max_new_tokens: 4}\nitems: [{id: a, input: hi, references: [hello]}]\n"
    run_id = _run(cli, tmp_path, tiny_model_dir, plain)
    code, out, err = cli("runs", "show", str(run_id), "--failures")
    assert code == 0, err
    assert out.startswith(f"run {run_id} has no assertions") and "assert:" in out
    code, out, _ = cli("runs", "show", str(run_id), "--failures", "--json")
    assert code == 0
    assert json.loads(out) == {"schema_version": 1, "run_id": run_id, "has_assertions": False, "failures": []}


def test_several_samples_name_the_sample(store: Store, tmp_path: Path, tiny_model_dir: Path, cli: Cli) -> None:
    suite = ("name: sampled\ngeneration: {max_new_tokens: 4}\n"
             "items: [{id: q, input: hi, assert: [{type: min-words, value: 50}]}]\n")
    run_id = _run(cli, tmp_path, tiny_model_dir, suite, "--samples", "2", "--temperature", "1.0")
    code, out, err = cli("runs", "show", str(run_id), "--failures")
    assert code == 0, err
    assert "q #0  min-words (assertion 1)" in out and "q #1  min-words (assertion 1)" in out
    assert "2 failed assertions in 2 of 2 outputs" in out


def test_unknown_run_is_refused(store: Store, cli: Cli) -> None:
    code, out, err = cli("runs", "show", "999", "--failures")
    assert code == 2 and out == ""
    assert "no run 999" in err and "evaltune runs list" in err


def test_a_failure_shows_the_output_as_plain_text() -> None:
    """An escape sequence or a bidirectional override from a model is shown as its code, on one line, cut."""
    hostile = "\x1b[31mred\x1b[0m\nnext line \u202e" + "word " * 100
    failure = FailedAssertion(item="x", sample=0, number=1, type="contains",
                              assertion={"type": "contains", "value": "812"}, output=hostile, reason="no 812")
    got = failure_block(failure, show_sample=False)[2]
    assert "\x1b" not in got and "\\x1b[31mred" in got and "\\u202e" in got and "\n" not in got
    assert got.endswith("…") and len(got) <= len("    got       ") + 160
