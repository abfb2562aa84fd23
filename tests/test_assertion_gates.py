"""A gate on ``pass_rate``: ``evaltune gate A B --gate gates.yaml`` with
``gates: {pass_rate: {min: 0.95, no_significant_regression: {}}}`` passes (exit 0) and fails (exit 1) on runs made
by ``evaltune run`` of one suite whose items carry assertions.

The runs differ only in ``--max-new-tokens`` (settings belong to the run, so they pair item by item): the tiny
model's tokens never span two words, so 2 or 3 new tokens always pass ``max-words: 3``, and 40 tokens of its
gibberish fail it on most items.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaltune.db.engine import Store
from tests.conftest import Cli

QUESTIONS = ["What is the capital of France?", "Name a colour.", "Count to ten.", "Say hello.",
             "What is two plus two?", "Describe the moon.", "Why is the sky blue?", "Name a fruit.",
             "Tell me a story about a robot.", "What does a language model do?", "Where do rivers flow?",
             "When does water boil?", "Who wrote Hamlet?", "List three animals.", "Explain a quick brown fox.",
             "What orbits the earth?"]
SUITE = "name: short-answers\ngeneration: {temperature: 0.0}\nscorers: [length]\nitems:\n" + "".join(
    f"  - {{id: q{i:02d}, input: \"{q}\", assert: [{{type: max-words, value: 3}}]}}\n"
    for i, q in enumerate(QUESTIONS))
GATES = "gates:\n  pass_rate:\n    min: 0.95\n    no_significant_regression: {}\n"

@pytest.fixture
def runs(store: Store, tmp_path: Path, tiny_model_dir: Path, cli: Cli) -> dict[int, int]:
    """Run ids by --max-new-tokens: 2 and 3 (every item passes), 40 (most fail)."""
    suite = tmp_path / "short-answers.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    ids = {}
    for tokens in (2, 3, 40):
        code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", str(tokens))
        assert code == 0, err
        assert "pass_rate" in out  # the summary prints it
        ids[tokens] = int(out.split()[1].rstrip(":"))
    return ids


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(GATES, encoding="utf-8")
    return path


def _pass_rate(cli: Cli, run_id: int) -> float:
    code, out, err = cli("runs", "show", str(run_id), "--json")
    assert code == 0, err
    metrics = {m["name"]: m for m in json.loads(out)["metrics"]}
    return float(metrics["pass_rate"]["value"])


def test_the_gate_passes_when_every_item_still_passes(runs: dict[int, int], gates: Path, cli: Cli) -> None:
    assert _pass_rate(cli, runs[2]) == 1.0 and _pass_rate(cli, runs[3]) == 1.0
    code, out, err = cli("gate", str(runs[2]), str(runs[3]), "--gate", str(gates))
    assert code == 0, out + err
    assert "PASS  pass_rate min: pass_rate = 1.0000 (must be >= 0.95)" in out
    assert "PASS  pass_rate no_significant_regression:" in out
    assert "gate passed" in out


def test_the_gate_fails_when_items_start_failing(runs: dict[int, int], gates: Path, cli: Cli) -> None:
    rate = _pass_rate(cli, runs[40])
    assert rate < 0.5  # the long outputs break max-words on most items
    code, out, err = cli("gate", str(runs[2]), str(runs[40]), "--gate", str(gates))
    assert code == 1, out + err
    assert f"FAIL  pass_rate min: pass_rate = {rate:.4f} (must be >= 0.95)" in out
    # Paired on the same items, the drop is significant (McNemar), so the regression rule fails as well.
    assert "FAIL  pass_rate no_significant_regression:" in out and "significant regression" in out
    assert "gate FAILED" in out
    # The failures view shows what broke.
    code, out, _ = cli("runs", "show", str(runs[40]), "--failures")
    assert code == 0 and "max-words (assertion 1)" in out and "expected  {type: max-words, value: 3}" in out
