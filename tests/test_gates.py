"""Gate files and the ``gate`` command's exit codes: 0 pass, 1 a gate failed, 2 error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaltune.db import open_store
from evaltune.reports.gates import GateFileError, check_gates, load_gates
from evaltune.reports.render import compare_runs
from tests.conftest import invoke_main
from tests.fixtures.report_seed import SeededRuns, seed_runs

PASSING = """
gates:
  exact_match: {min: 0.8, no_significant_regression: {min_effect: 0.02}}
  hallucinated: {max: 0.1, no_significant_regression: true}
  "sentiment_gap:gender": {max: 0.1}
"""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeededRuns]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    store = open_store(url)
    with store.session_scope() as session:
        ids = seed_runs(session, 40, ratings=False)
    store.close()
    yield ids


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    return str(path)


def test_gate_passes_and_writes_junit_and_summary(runs: SeededRuns, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    junit, summary = tmp_path / "gates.xml", tmp_path / "summary.md"
    code, out, _ = invoke_main(["gate", str(runs.baseline), str(runs.candidate), "--gate", _write(tmp_path, PASSING),
                                "--junit", str(junit), "--summary", str(summary)], monkeypatch, capsys)
    assert code == 0, out
    assert out.count("PASS") == 5 and "gate passed" in out
    suite = ET.fromstring(junit.read_text())
    assert (suite.get("tests"), suite.get("failures")) == ("5", "0")
    assert "## Gates" in summary.read_text()


def test_gate_fails_on_bound_on_regression_and_on_missing_metric(runs: SeededRuns, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path, "fluency: {max: 0.3}\nno_such_metric: {min: 0}\n")
    junit = tmp_path / "gates.xml"
    code, out, _ = invoke_main(["gate", str(runs.baseline), str(runs.candidate), "--gate", rules,
                                "--junit", str(junit)], monkeypatch, capsys)
    assert code == 1 and "gate FAILED" in out
    assert "no_such_metric: not in the report" in out
    assert ET.fromstring(junit.read_text()).get("failures") == "2"
    # Swapped, the candidate hallucinates 0.2 more often, significantly: a regression.
    rules = _write(tmp_path, "hallucinated: {no_significant_regression: {min_effect: 0.02}}\n")
    code, out, _ = invoke_main(["gate", str(runs.candidate), str(runs.baseline), "--gate", rules], monkeypatch, capsys)
    assert code == 1 and "significant regression of at least 0.02" in out
    # A regression smaller than min_effect passes.
    rules = _write(tmp_path, "hallucinated: {no_significant_regression: {min_effect: 0.25}}\n")
    code, _, _ = invoke_main(["gate", str(runs.candidate), str(runs.baseline), "--gate", rules], monkeypatch, capsys)
    assert code == 0


@pytest.mark.parametrize(("text", "message"), [
    ("exact_match: {minn: 1}\n", "gate 'exact_match', rule 'minn': unknown rule"),
    ("exact_match: {min: high}\n", "field 'value' must be a number"),
    ("exact_match: {no_significant_regression: {min_effect: x}}\n", "field 'min_effect' must be a number"),
    ("- just a list\n", "expected a mapping"),
    ("a: [unclosed\n", "invalid YAML"),
])
def test_bad_gate_files_exit_2_naming_file_rule_and_field(runs: SeededRuns, tmp_path: Path, text: str, message: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(GateFileError, match=message):
        load_gates(path)
    code, _, err = invoke_main(["gate", str(runs.baseline), str(runs.candidate), "--gate", path], monkeypatch, capsys)
    assert code == 2 and path in err and message.split(":")[0] in err


def test_unknown_run_and_unshared_runs_exit_2(runs: SeededRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path, PASSING)
    code, _, err = invoke_main(["gate", str(runs.baseline), "77", "--gate", rules], monkeypatch, capsys)
    assert code == 2 and "no run with id 77" in err
    code, _, err = invoke_main(["gate", str(runs.baseline), str(runs.other_suite_run), "--gate", rules],
                               monkeypatch, capsys)
    assert code == 2 and "share no items" in err
    code, _, err = invoke_main(["gate", str(runs.baseline), str(runs.candidate), "--gate", str(tmp_path / "nope.yaml")],
                               monkeypatch, capsys)
    assert code == 2 and "file not found" in err


def test_check_gates_library(runs: SeededRuns, tmp_path: Path) -> None:
    report = compare_runs(runs.baseline, runs.candidate)
    outcome = check_gates(report, load_gates(_write(tmp_path, "exact_match: {min: 0.9}\n")))
    (result,) = outcome.results
    assert not outcome.passed and result.actual == pytest.approx(0.85)
    assert result.message == "exact_match = 0.8500 (must be >= 0.9)"


def test_run_with_baseline_and_gate(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model = str(tiny_model_dir)
    code, _, err = invoke_main(["run", "smoke", "--model", model, "--limit", "4"], monkeypatch, capsys)
    assert code == 0, err
    bad = _write(tmp_path, "exact_match: {minimum: 1}\n")
    code, out, err = invoke_main(["run", "smoke", "--model", model, "--limit", "4", "--seed", "1", "--baseline", "1",
                                  "--gate", bad], monkeypatch, capsys)
    assert code == 2 and "unknown rule" in err and "metric" not in out  # refused before running
    ok = _write(tmp_path, "exact_match: {no_significant_regression: {min_effect: 0.02}}\n")
    code, out, _ = invoke_main(["run", "smoke", "--model", model, "--limit", "4", "--seed", "1", "--baseline", "1",
                                "--gate", ok], monkeypatch, capsys)
    assert code == 0 and "gate passed" in out
    failing = _write(tmp_path, "exact_match: {min: 2}\n")
    code, out, _ = invoke_main(["run", "smoke", "--model", model, "--limit", "4", "--seed", "2", "--baseline", "1",
                                "--gate", failing], monkeypatch, capsys)
    assert code == 1 and "FAIL  exact_match min" in out


def test_a_rule_names_metrics_as_the_summary_does_and_a_scorer_name_points_to_them(
        runs: SeededRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path, 'gates:\n  "sentiment_gap:gender": {max: 0.1, no_significant_regression: true}\n'
                             "  sentiment_gap: {max: 1}\n  halucinated: {max: 1}\n")
    code, out, _ = invoke_main(["gate", str(runs.baseline), str(runs.candidate), "--gate", rules], monkeypatch, capsys)
    assert code == 1
    # A gap per attribute is gated on the candidate's stored value, and tested against the baseline's unpaired.
    assert "PASS  sentiment_gap:gender max: sentiment_gap:gender = 0.0800 (must be <= 0.1)" in out
    assert "PASS  sentiment_gap:gender no_significant_regression: sentiment_gap:gender: delta -0.1200" in out
    assert ("FAIL  sentiment_gap max: sentiment_gap: not in the report, so 'max' cannot be checked; "
            "its metrics are per attribute: sentiment_gap:gender") in out
    assert "FAIL  halucinated max: halucinated: not in the report, so 'max' cannot be checked " \
           "(did you mean 'hallucinated'?)" in out
