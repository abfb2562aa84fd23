"""evaltune's pytest plugin: run a suite against a model from your own tests and assert on what it found.

    def test_release(evaltune):
        result = evaltune.run(Path(__file__).parent / "support-bot.yaml", model="./my-model")
        result.assert_passed(min_pass_rate=0.95, answer_match=0.8)

Installing evaltune registers it (the ``pytest11`` entry point); ``-p no:evaltune`` turns it off. Runs are stored in
a SQLite file in the pytest session's temp folder, so tests are hermetic, unless ``--evaltune-store URL`` (or the
ini option ``evaltune_store``) names a real store. ``--evaltune-model`` replaces the model every test names, so one
test file checks any candidate. A suite run twice in a session with the same model and settings is run once (the
store hands back the completed run). Only pytest is imported here at start-up: evaltune's parts load when a test
runs a suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from evaltune.reports.failures import AssertionSummary, FailedAssertion

STORE_OPTION = "--evaltune-store"
MODEL_OPTION = "--evaltune-model"
STORE_INI = "evaltune_store"
FAILURES_SHOWN = 20  # an AssertionError lists this many failed assertions; 'runs show --failures' has them all

Bound = float | tuple[float | None, float | None]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evaltune", "evaltune: run suites from tests")
    group.addoption(STORE_OPTION, metavar="URL", default=None,
                    help="Store the evaltune fixture's runs here (sqlite:///file.db or postgresql+psycopg://...) "
                         "instead of a SQLite file in the session's temp folder.")
    group.addoption(MODEL_OPTION, metavar="MODEL", default=None,
                    help="Run every suite of the evaltune fixture on this model instead of the one each test names "
                         "('default', a folder, a hub id, openai:URL, model:N).")
    parser.addini(STORE_INI, "The evaltune fixture's store URL (as --evaltune-store).", default="")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say so in the header when a run's store or model comes from the command line or the ini file."""
    lines = []
    if config.getoption(MODEL_OPTION):
        lines.append(f"evaltune: every suite runs on {config.getoption(MODEL_OPTION)}")
    if config.getoption(STORE_OPTION) or config.getini(STORE_INI):
        from evaltune.db.engine import safe_url

        lines.append(f"evaltune: store {safe_url(_configured_store(config))}")
    return lines


def _configured_store(config: pytest.Config) -> str:
    return str(config.getoption(STORE_OPTION) or config.getini(STORE_INI) or "")


@pytest.fixture(scope="session")
def evaltune(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SuiteRunner:
    """Runs evaltune suites: ``evaltune.run(suite, model=...)`` returns a ``SuiteResult``."""
    url = _configured_store(request.config)
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('evaltune') / 'evaltune.db'}"
    return SuiteRunner(url, request.config.getoption(MODEL_OPTION))


@dataclass(frozen=True)
class Metric:
    """One run metric as the summary prints it: the value, its 95% interval and how many it rests on."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool = True

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] (n={self.n})"


@dataclass(frozen=True)
class SuiteResult:
    """A stored run of a suite: its metrics by name (``pass_rate``, ``pass_rate:contains``, ``answer_match``, ...)
    and its failed assertions. ``assertions`` is None when the suite has none."""

    run_id: int
    suite: str
    model: str
    store_url: str
    metrics: dict[str, Metric]
    failures: list[FailedAssertion] = field(default_factory=list)
    assertions: AssertionSummary | None = None

    @property
    def pass_rate(self) -> float | None:
        """The share of outputs whose assertions all passed; None when the suite has no assertions."""
        metric = self.metrics.get("pass_rate")
        return None if metric is None else metric.value

    def assert_passed(self, min_pass_rate: float | None = 1.0, **metric_bounds: Bound) -> None:
        """Raise AssertionError, listing each failed assertion (item, assertion, expected, got, reason), unless
        ``pass_rate`` is at least ``min_pass_rate`` (None: not checked) and each named metric is within its bound.

        A bound is a number on the metric's good side (a minimum where higher is better, a maximum where lower is
        better: ``answer_match=0.8``, ``toxicity=0.1``) or a ``(low, high)`` pair, either None. Names with a
        colon or parentheses go through a dict: ``**{"pass_rate:contains": 1.0}``. An unknown name is a
        ValueError naming the run's metrics.
        """
        __tracebackhide__ = True
        problems = self._pass_rate_problems(min_pass_rate)
        problems += [problem for name, bound in metric_bounds.items()
                     if (problem := self._bound_problem(name, bound)) is not None]
        if problems:
            raise AssertionError(self._failure_message(problems))

    def _pass_rate_problems(self, minimum: float | None) -> list[str]:
        if minimum is None:
            return []
        if self.assertions is None:
            return ["pass_rate: the suite has no assertions ('assert:' on its items); "
                    "call assert_passed(min_pass_rate=None, ...) to check only metrics"]
        metric = self.metrics.get("pass_rate")
        if metric is None:
            return ["pass_rate: no output could be judged (every assertion was skipped; see below)"]
        if metric.value < minimum:
            return [f"pass_rate {metric} is below the minimum {minimum:.3f}"]
        return []

    def _bound_problem(self, name: str, bound: Bound) -> str | None:
        metric = self.metrics.get(name)
        if metric is None:
            from evaltune.suggestions import did_you_mean

            raise ValueError(f"assert_passed: run {self.run_id} has no metric '{name}'"
                             f"{did_you_mean(name, self.metrics)}; its metrics: {', '.join(sorted(self.metrics))}")
        if isinstance(bound, tuple):
            low, high = bound
        else:
            low, high = (bound, None) if metric.higher_is_better else (None, bound)
        if low is not None and metric.value < low:
            return f"{name} {metric} is below the minimum {low:.3f}"
        if high is not None and metric.value > high:
            return f"{name} {metric} is above the maximum {high:.3f}"
        return None

    def _failure_message(self, problems: list[str]) -> str:
        from evaltune.db.engine import safe_url
        from evaltune.reports.failures import failures_text

        lines = [f"evaltune: suite {self.suite} on {self.model} (run {self.run_id}) did not pass:"]
        lines += [f"  - {problem}" for problem in problems]
        if self.assertions is not None:
            lines += ["", failures_text(self.run_id, self.assertions, self.failures, limit=FAILURES_SHOWN).rstrip()]
        lines += ["", f"every failure: EVALTUNE_DB_URL='{safe_url(self.store_url)}' "
                      f"evaltune runs show {self.run_id} --failures"]
        return "\n".join(lines)


class SuiteRunner:
    """What the ``evaltune`` fixture gives a test: ``run`` a suite on a model into the session's store."""

    def __init__(self, store_url: str, model_override: str | None = None):
        self.store_url = store_url
        self.model_override = model_override

    def run(self, suite: str | os.PathLike[str], model: str = "default", *, adapter: str | None = None,
            model_name: str | None = None, scorers: tuple[str, ...] | list[str] | None = None,
            seed: int | None = None, limit: int | None = None, batch_size: int | None = None,
            temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None,
            samples: int | None = None, variant: str | None = None) -> SuiteResult:
        """Run ``suite`` (a suite file or a built-in suite's name) on ``model``, as ``evaltune run`` does with the
        same options, and return the stored run; a suite with prompt variants (``prompts:``) runs the one named by
        ``variant``. ``--evaltune-model`` replaces ``model``, ``adapter`` and
        ``model_name`` (use ``model:N`` for a stored adapter). A suite or model that cannot be used fails the test
        with evaltune's one-line message."""
        __tracebackhide__ = True
        from evaltune import settings
        from evaltune.errors import UserError, user_errors
        from evaltune.evaluate import EvaluateRequest, evaluate
        from evaltune.harness.suite import SettingsOverrides

        settings.quiet_third_party_progress()
        settings.apply_threads()
        if self.model_override:  # the command line names the whole model: an adapter made for the test's is dropped
            model, adapter, model_name = self.model_override, None, None
        request = EvaluateRequest(
            suite=os.fspath(suite), model=model, adapter=adapter, model_name=model_name,
            seed=seed, scorers=None if scorers is None else tuple(scorers), batch_size=batch_size, limit=limit,
            variant=variant,
            settings=SettingsOverrides(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                       samples=samples),
            store_url=self.store_url)
        try:
            with user_errors():
                evaluation = evaluate(request)
        except UserError as error:
            problem = str(error)
        else:
            return self.result(evaluation.outcome.run_id, evaluation.suite.name, evaluation.model.display_name)
        # Outside the except block, so that pytest prints the one line and not the chain of exceptions behind it.
        pytest.fail(f"evaltune: {problem}", pytrace=False)

    def result(self, run_id: int, suite: str, model: str) -> SuiteResult:
        """The stored run ``run_id`` as a ``SuiteResult``."""
        from sqlalchemy import select

        from evaltune.db.engine import open_store
        from evaltune.db.evaluation import RunMetric
        from evaltune.reports.failures import assertion_summary, failed_assertions

        store = open_store(self.store_url)
        try:
            with store.sessions.begin() as session:
                rows = session.execute(select(RunMetric).where(RunMetric.run_id == run_id)).scalars()
                metrics = {m.name: Metric(m.value, m.ci_low, m.ci_high, m.n, m.higher_is_better) for m in rows}
                summary = assertion_summary(session, run_id)
                failures = failed_assertions(session, run_id) if summary is not None else []
        finally:
            store.close()
        return SuiteResult(run_id, suite, model, self.store_url, metrics, failures, summary)


__all__ = ["Metric", "SuiteResult", "SuiteRunner", "evaltune"]
