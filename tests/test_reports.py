"""The comparison report on two seeded runs: every number of the JSON against scipy or a hand count."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from scipy import stats

from evaltune.cli import main
from evaltune.db import open_store
from evaltune.db.engine import Store
from evaltune.metrics.stats.paired import benjamini_hochberg
from evaltune.reports.compare import build_report
from evaltune.reports.history import history_of, render_history
from evaltune.reports.load import ReportError
from evaltune.reports.records import report_to_dict
from evaltune.reports.render import render_report
from tests.fixtures.report_seed import HOSTILE, SeededRuns, exact_match, fluency, hallucinated, seed_runs

N = 40


def invoke_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                ) -> tuple[int, str, str]:
    """``evaltune ARGS`` in-process through ``main()`` (which maps errors to exit codes); (code, out, err)."""
    monkeypatch.setattr("sys.argv", ["evaltune", *args])
    try:
        main()
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def seeded(store_url: str) -> Iterator[tuple[Store, SeededRuns]]:
    store = open_store(store_url)
    with store.session_scope() as session:
        ids = seed_runs(session, N)
    yield store, ids
    store.close()


@pytest.fixture
def data(seeded: tuple[Store, SeededRuns]) -> dict:
    store, ids = seeded
    with store.session_scope() as session:
        return report_to_dict(build_report(session, ids.baseline, ids.candidate))


def _wilson(successes: int) -> tuple[float, float]:
    interval = stats.binomtest(successes, N).proportion_ci(method="wilson")
    return interval.low, interval.high


def test_binary_metrics_match_scipy(data: dict) -> None:
    metrics = {m["name"]: m for m in data["metrics"]}
    em, hal = metrics["exact_match"], metrics["hallucinated"]
    assert (em["baseline"]["value"], em["candidate"]["value"], em["delta"]) == pytest.approx((0.75, 0.85, 0.1))
    assert (em["baseline"]["ci_low"], em["baseline"]["ci_high"]) == pytest.approx(_wilson(30))
    assert (em["candidate"]["ci_low"], em["candidate"]["ci_high"]) == pytest.approx(_wilson(34))
    # McNemar's exact test is a binomial test on the discordant pairs: 2 lost, 6 gained.
    assert em["p_value"] == pytest.approx(stats.binomtest(2, 8, 0.5).pvalue)
    assert hal["delta"] == pytest.approx(-0.2)
    assert hal["p_value"] == pytest.approx(stats.binomtest(0, 8, 0.5).pvalue)
    for m in (em, hal):
        assert m["test"] == "mcnemar" and m["baseline"]["n"] == N
        assert m["delta_ci_low"] <= m["delta"] <= m["delta_ci_high"]
    assert em["delta_ci_low"] < 0 < em["delta_ci_high"]  # 2 lost vs 6 gained: not significant
    assert hal["delta_ci_high"] < 0


def test_continuous_metric_and_multiple_comparisons(data: dict) -> None:
    metrics = {m["name"]: m for m in data["metrics"]}
    flu = metrics["fluency"]
    diffs = [fluency(i, N, True) - fluency(i, N, False) for i in range(N)]
    assert flu["delta"] == pytest.approx(0.05)
    assert flu["delta_ci_low"] <= 0.05 <= flu["delta_ci_high"]
    assert flu["test"] == "permutation"
    # Every difference is positive: the sign-flip p-value is 1/(10000+1); scipy's Wilcoxon agrees it is tiny.
    assert flu["p_value"] == pytest.approx(1 / 10_001)
    assert stats.wilcoxon(diffs).pvalue < 1e-6
    reference = stats.permutation_test((diffs,), lambda d: sum(d), permutation_type="samples",
                                       n_resamples=10_000, random_state=0).pvalue
    assert flu["p_value"] == pytest.approx(reference, abs=2e-3)
    names = [m["name"] for m in data["metrics"]]
    expected_q = benjamini_hochberg([metrics[n]["p_value"] for n in names])
    assert [m["q_value"] for m in data["metrics"]] == pytest.approx(expected_q)
    p_sorted = sorted(m["p_value"] for m in data["metrics"])
    assert metrics["hallucinated"]["q_value"] == pytest.approx(min(1.0, p_sorted[1] * 3 / 2))
    verdicts = {m["name"]: m["verdict"] for m in data["metrics"]}
    assert verdicts == {"exact_match": "no significant change", "hallucinated": "better", "fluency": "better"}
    assert data["verdict"] == "better"
    assert [m["family"] for m in data["metrics"]] == ["hallucination", "quality", "quality"]


def test_flipped_items_exact_list(data: dict) -> None:
    keys = [f["key"] for f in data["flipped"]]
    assert keys == ["q03", "q07", "q02", "q04", "q05", "q06", "q08", "q09",
                    "q30", "q31", "q32", "q33", "q34", "q35"]
    first = data["flipped"][0]
    assert first["lost"] == ["exact_match"] and first["gained"] == ["hallucinated"] and first["impact"] == 2
    assert first["candidate_output"] == HOSTILE and first["baseline_output"] == "baseline answer 3"
    expected = {f"q{i:02d}" for i in range(N) if exact_match(i, True) != exact_match(i, False)
                or hallucinated(i, True) != hallucinated(i, False)}
    assert set(keys) == expected


def test_tags_bias_human_lineage(data: dict) -> None:
    tags = {(t["tag"], t["metric"]): t for t in data["tags"]}
    for tag, parity in (("math", 0), ("history", 1)):
        items = [i for i in range(N) if i % 2 == parity]
        row = tags[(tag, "exact_match")]
        base = sum(exact_match(i, False) for i in items) / len(items)
        cand = sum(exact_match(i, True) for i in items) / len(items)
        assert (row["n"], row["baseline"], row["candidate"], row["delta"]) == pytest.approx(
            (len(items), base, cand, cand - base))
    (gap,) = data["bias_gaps"]
    assert (gap["metric"], gap["attribute"], gap["baseline_p"], gap["candidate_p"]) == (
        "sentiment_gap", "gender", 0.01, 0.4)
    assert gap["change"] == pytest.approx(0.08 - 0.2)
    human = data["human"]
    assert human["likert_baseline"]["value"] == pytest.approx(3.5)
    assert human["likert_candidate"]["value"] == pytest.approx(4.5)
    assert (human["ab_wins"], human["ab_losses"], human["ab_ties"], human["ab_both_bad"]) == (2, 1, 1, 0)
    wilson = stats.binomtest(2, 3).proportion_ci(method="wilson")
    assert (human["ab_win_rate"], human["ab_ci_low"], human["ab_ci_high"]) == pytest.approx(
        (2 / 3, wilson.low, wilson.high))
    strengths = {s["model"]: s for s in human["bradley_terry"]}
    assert strengths["tuned-adapter"]["strength"] > strengths["base-model"]["strength"]
    for s in strengths.values():
        assert s["ci_low"] <= s["strength"] <= s["ci_high"]
    assert [e["name"] for e in data["lineage"]] == ["tuned-adapter", "base-model"]
    job = data["lineage"][0]["retune_job"]
    assert (job["method"], job["dataset"]["name"], job["dataset"]["strategy"]) == ("dpo", "ratings-v1", "pairwise")


def test_errors_unknown_run_and_no_shared_items(seeded: tuple[Store, SeededRuns]) -> None:
    store, ids = seeded
    with store.session_scope() as session:
        with pytest.raises(ReportError, match="no run with id 999"):
            build_report(session, ids.baseline, 999)
        with pytest.raises(ReportError, match="share no items"):
            build_report(session, ids.baseline, ids.other_suite_run)


def test_formats_escape_hostile_output(seeded: tuple[Store, SeededRuns]) -> None:
    store, ids = seeded
    with store.session_scope() as session:
        report = build_report(session, ids.baseline, ids.candidate)
    page = render_report(report, "html")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<svg" in page
    markdown = render_report(report, "md")
    assert "<script>" not in markdown and "**Verdict: better**" in markdown
    assert json.loads(render_report(report, "json"))["shared_items"] == N


def test_report_command_and_history(seeded: tuple[Store, SeededRuns], store_url: str,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _store, ids = seeded
    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    code, out, _err = invoke_main(["report", str(ids.baseline), str(ids.candidate), "--format", "json"],
                                  monkeypatch, capsys)
    assert code == 0 and json.loads(out)["verdict"] == "better"
    code, _out, err = invoke_main(["report", str(ids.baseline), "999"], monkeypatch, capsys)
    assert code == 2 and "no run with id 999" in err
    trend = history_of("qa", metric="sentiment_gap:gender", url=store_url)
    assert [(p.run_id, p.value) for p in trend.points] == [(ids.baseline, 0.2), (ids.candidate, 0.08)]
    lineage_only = history_of("qa", model="tuned-adapter", url=store_url)
    assert {p.run_id for p in lineage_only.points} == {ids.candidate}
    assert "<svg" in render_history(trend, "html") and "| 0.080 [" in render_history(trend, "md")
    code, out, _err = invoke_main(["report", "--history", "qa", "--metric", "fluency"], monkeypatch, capsys)
    assert code == 0 and "## fluency" in out


def test_app_compare_page_shows_the_same_report(seeded: tuple[Store, SeededRuns], store_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)

    def page() -> None:
        from evaltune.feedback_ui.screens import compare

        compare.render(None)  # type: ignore[arg-type]

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    assert at.header[0].value == "Compare"
    _store, ids = seeded
    at.selectbox(key="cmp_base").set_value(ids.baseline)
    at.selectbox(key="cmp_cand").set_value(ids.other_suite_run)
    at.run()
    assert "share no items" in at.error[0].value
    at.selectbox(key="cmp_cand").set_value(ids.candidate)
    at.run()
    assert not at.exception and [s.value for s in at.subheader] == ["Verdict: better"]
