"""The README's examples are run, read from README.md itself so that it cannot drift: its gate file gates two
real runs of the suite it names, every metric name it shows is one a run reports, and every error it shows
"for example" is the line evaltune prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaltune.db.engine import Store
from evaltune.feedback_ui.answers import PairAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.reports.gates import load_gates
from tests.conftest import PROJECT_ROOT, invoke_main
from tests.fixtures.feedback_seed import rate_campaign, seed_users

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
HUMAN = {"human:likert", "human:win_rate"}  # the report's figures from ratings, not a run's metrics


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"  # the README's examples do not depend on the database


def yaml_block(first_line: str) -> str:
    """The README's ```yaml block that starts with ``first_line``."""
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL) if b.startswith(first_line)]
    return block


def shown_metric_names() -> set[str]:
    """Metric names the README shows: gate rules, ``--metric NAME`` and backticked ``scorer:attribute`` names."""
    gate = set(re.findall(r'^  "?([^":\s]+(?::[^"\s]+)?)"?: \{', yaml_block("gates:"), flags=re.MULTILINE))
    metric_options = set(re.findall(r"--metric (\w+)", README))
    per_attribute = set(re.findall(r"`([a-z_]+:[a-z_]+)`", README))
    return gate | metric_options | per_attribute


def test_the_gate_example_gates_two_runs_of_the_regression_suite_and_its_names_exist(
        tiny_model_dir: Path, tiny_adapter_dir: Path, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text(yaml_block("gates:"), encoding="utf-8")
    model = str(tiny_model_dir)
    for extra in ([], ["--adapter", str(tiny_adapter_dir)]):  # before and after a retune
        code, _out, err = invoke_main(["run", "regression", "--model", model, "--all", *extra], monkeypatch, capsys)
        assert code == 0, err
    with store.session_scope() as session:  # blind A/B votes, through the rating queue, for human:win_rate
        rater = seed_users(session, {"rater": "annotator"})["rater"]
        campaign = create_campaign(session, None, name="a/b", run_ids=[1, 2], pairwise=True, filters=["tag=fictional"])
        assert rate_campaign(session, rater, campaign.id, lambda task: PairAnswer("a"))

    code, out, err = invoke_main(["gate", "1", "2", "--gate", str(gates)], monkeypatch, capsys)
    assert code in (0, 1), err  # pass or fail on the tiny model's numbers, but never an error
    rules = load_gates(gates)
    assert {(r.metric, r.kind) for r in rules} >= {("grounded_hallucination_rate", "max"),
                                                  ("cf_sentiment_gap:gender", "max"), ("human:win_rate", "min")}
    for rule in rules:  # every rule was checked against a number of the report
        line = next(line for line in out.splitlines() if re.match(rf"(PASS|FAIL)  {re.escape(rule.metric)} "
                                                                  rf"{rule.kind}: ", line))
        assert "not in the report" not in line and "not measured" not in line, line

    code, show, _ = invoke_main(["runs", "show", "1", "--json"], monkeypatch, capsys)
    reported = set(re.findall(r'"name": "([^"]+)"', show)) | HUMAN
    assert shown_metric_names() - reported == set()


def test_every_error_the_readme_shows_for_example_is_the_one_printed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    examples = re.findall(r"for example\s+`([^`]+)`", README)
    assert examples, "the README shows no error example: update this test"
    monkeypatch.chdir(tmp_path)
    # The suite file shown under "Suite files", with "references: 3" for its first item's list of answers.
    suite = re.sub(r"(?m)^(\s+references:) .*$", r"\1 3", yaml_block("name: my-suite"), count=1)
    (tmp_path / "suite.yaml").write_text(suite, encoding="utf-8")
    producers = {"suite.yaml": ["suites", "validate", "suite.yaml"]}
    for example in examples:
        source = example.split(":", 1)[0]
        assert source in producers, f"no test produces the README's example error {example!r}"
        code, _out, err = invoke_main(producers[source], monkeypatch, capsys)
        assert (code, err.strip()) == (2, f"error: {example}")
