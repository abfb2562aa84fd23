"""The pytest plugin as a team uses it: a test file of theirs, run by pytest in a fresh process, with the plugin
loaded through its ``pytest11`` entry point (nothing in the test file names it).

The suites run on the tiny model (gibberish, at most 8 tokens), so their assertions pass or fail by construction.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PROJECT_ROOT

pytest_plugins = ["pytester"]

GOOD = """\
name: good
items:
  - {id: colour, input: Name a colour., assert: [{type: max-words, value: 50}]}
  - {id: hello, input: Say hello., assert: [{type: not-contains, value: "As an AI language model"}]}
"""
BAD = """\
name: bad
items:
  - id: capital
    input: What is the capital of France?
    assert:
      - {type: equals, value: "Paris is the capital of France."}
      - {type: max-words, value: 50}
  - {id: colour, input: Name a colour., assert: [{type: max-words, value: 50}]}
"""
TESTS = """\
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MODEL = {model!r}


def test_good_suite(evaltune):
    result = evaltune.run(HERE / "good.yaml", model=MODEL, max_new_tokens=8)
    assert isinstance(result.run_id, int) and result.failures == []
    assert result.pass_rate == 1.0
    rate = result.metrics["pass_rate"]
    assert rate.n == 2 and rate.ci_low < 1.0 <= rate.ci_high
    result.assert_passed(min_pass_rate=1.0, **{{"pass_rate:max-words": 1.0}})
    with pytest.raises(ValueError, match="did you mean 'pass_rate'"):
        result.assert_passed(pass_rat=0.5)


def test_bad_suite(evaltune):
    result = evaltune.run(HERE / "bad.yaml", model=MODEL, max_new_tokens=8)
    assert result.pass_rate == 0.5
    result.assert_passed(min_pass_rate=0.9)
"""
OVERRIDE_TEST = """\
from pathlib import Path


def test_release(evaltune):
    result = evaltune.run(Path(__file__).parent / "good.yaml", model="/no/such/model", max_new_tokens=8)
    assert result.model != "/no/such/model"
    result.assert_passed()
"""


@pytest.fixture
def team(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A team's project folder with the two suites; pytest there loads plugins from entry points."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makefile(".yaml", good=GOOD, bad=BAD)
    return pytester


def _runs(db: Path) -> list[tuple[int, str]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [(int(r[0]), str(r[1])) for r in conn.execute(
                text("SELECT runs.id, suites.name FROM runs JOIN suites ON suites.id = runs.suite_id ORDER BY 1"))]
    finally:
        engine.dispose()


def test_a_passing_and_a_failing_suite(team: pytest.Pytester, tiny_model_dir: Path) -> None:
    team.makepyfile(test_release=TESTS.format(model=str(tiny_model_dir)))
    result = team.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # The failure names the suite, the model, the run and the rule it broke, then lists each failed assertion
    # with its item, the assertion as written, what the model said and why, and how to see them all again.
    result.stdout.fnmatch_lines([
        "*AssertionError: evaltune: suite bad on * (run 2) did not pass:",
        "*  - pass_rate 0.500 [[]*, *] (n=2) is below the minimum 0.900",
        "*capital  equals (assertion 1)",
        "*    expected  {type: equals, value: Paris is the capital of France.}",
        "*    got       *",
        "*    reason    *",
        "*1 failed assertion in 1 of 2 outputs of run 2; pass_rate 0.500 [[]*",
        "*every failure: EVALTUNE_DB_URL='sqlite:///*/evaltune.db' evaltune runs show 2 --failures",
    ])
    assert "max-words (assertion 2)" not in out  # only what failed
    assert "pytest_plugin.py" not in out  # the plugin's own frames are hidden: the test's line is the story
    # The store is the session's own temp folder: both runs are there, and nowhere else.
    db = Path(out.split("EVALTUNE_DB_URL='sqlite:///")[1].split("'")[0])
    assert _runs(db) == [(1, "good"), (2, "bad")]


def test_the_command_line_chooses_the_model_and_the_store(team: pytest.Pytester, tiny_model_dir: Path) -> None:
    team.makepyfile(test_override=OVERRIDE_TEST)
    ini_db, cli_db = team.path / "from_ini.db", team.path / "from_cli.db"
    team.makeini(f"[pytest]\nevaltune_store = sqlite:///{ini_db}\n")
    # Without --evaltune-model the test's own model is used, and a model that does not exist fails the test
    # with evaltune's one-line message, not a traceback.
    alone = team.runpytest_subprocess("-q")
    alone.assert_outcomes(failed=1)
    alone.stdout.fnmatch_lines(["*evaltune: *no/such/model*"])
    assert "Traceback" not in alone.stdout.str() and "exception" not in alone.stdout.str()
    # The ini file's store was used (and holds no run: the model failed before the run began).
    assert ini_db.exists() and _runs(ini_db) == []
    passed = team.runpytest_subprocess(f"--evaltune-model={tiny_model_dir}",
                                       f"--evaltune-store=sqlite:///{cli_db}")
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines([f"evaltune: every suite runs on {tiny_model_dir}", "evaltune: store sqlite:///*"])
    assert _runs(cli_db) == [(1, "good")] and _runs(ini_db) == []  # the command line beats the ini file


def test_the_plugin_is_registered_and_cheap_to_import() -> None:
    """pytest finds it through the entry point, and loading it imports none of torch, transformers or the store,
    so evaltune's own test sessions (and a team's that never use it) pay nothing for it."""
    code = ("import sys, importlib.metadata as m; "
            "eps = [e.value for e in m.entry_points(group='pytest11') if e.name == 'evaltune']; "
            "import evaltune.pytest_plugin; "
            "print(eps, sorted(n for n in ('torch', 'transformers', 'sqlalchemy', 'evaltune.db') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['evaltune.pytest_plugin'] []"


def test_the_example_release_test_shows_what_a_weaker_model_broke(
        team: pytest.Pytester, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/test_release.py and its suite, run as the README says on a candidate model (the tiny one, far
    below the bar): the suite loads, every assertion type runs offline, and the failure lists the broken items."""
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)
    for name in ("support-bot.yaml", "test_release.py"):
        (team.path / name).write_text((PROJECT_ROOT / "examples" / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = team.runpytest_subprocess("-q", f"--evaltune-model={tiny_model_dir}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: evaltune: suite support-bot on tiny_model* did not pass:",
        "*  - pass_rate * is below the minimum 0.600",
        "*  - answer_match * is below the minimum 1.000",
        "*refund-json  is-json (assertion 3)",
        "*    reason    not valid JSON*",
        "* failed assertions in * of 8 outputs of run 1; pass_rate *",
        "*1 skipped: llm-rubric: set EVALTUNE_JUDGE_MODEL=*",
    ])


def test_the_example_suite_keeps_every_assertion_type_of_the_issue() -> None:
    from evaltune.harness.loaders import load_suite

    suite = load_suite(PROJECT_ROOT / "examples" / "support-bot.yaml")
    labels = {assertion.label for item in suite.items for assertion in item.assertions}
    assert labels >= {"not-contains", "max-words", "is-json", "contains", "regex", "similar", "llm-rubric",
                      "not-regex", "scorer"}
    assert suite.scorers == ("answer_match", "similar(threshold=0.75)")
    assert all(item.assertions[:2] == suite.items[0].assertions[:2] for item in suite.items)  # the defaults first


def test_a_bound_is_on_each_metrics_good_side() -> None:
    """A bare number is a minimum where higher is better and a maximum where lower is better; a pair bounds both
    ways; a suite without assertions cannot pass a pass_rate check unless told not to check it."""
    from evaltune.pytest_plugin import Metric, SuiteResult

    result = SuiteResult(run_id=7, suite="s", model="m", store_url="sqlite:///x.db", metrics={
        "answer_match": Metric(0.8, 0.6, 0.9, 40), "toxicity": Metric(0.3, 0.2, 0.4, 40, higher_is_better=False)})
    result.assert_passed(min_pass_rate=None, answer_match=0.8, toxicity=0.3)
    result.assert_passed(min_pass_rate=None, answer_match=(0.5, 0.9), toxicity=(None, 0.5))
    with pytest.raises(AssertionError, match=r"toxicity 0.300 \[0.200, 0.400\] \(n=40\) is above the maximum 0.100"):
        result.assert_passed(min_pass_rate=None, toxicity=0.1)
    with pytest.raises(AssertionError, match=r"answer_match 0\.800 .* is above the maximum 0\.700"):
        result.assert_passed(min_pass_rate=None, answer_match=(None, 0.7))
    with pytest.raises(AssertionError, match="the suite has no assertions") as raised:
        result.assert_passed()
    assert "evaltune runs show 7 --failures" in str(raised.value)
