"""The comparison report on two seeded runs: every number of the JSON against scipy or a hand count."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy import stats
from sqlalchemy import select

from evaltune.db import open_store
from evaltune.db.engine import Store
from evaltune.db.evaluation import RunMetric
from evaltune.metrics.stats.paired import benjamini_hochberg
from evaltune.reports.compare import build_report
from evaltune.reports.history import history_of, render_history
from evaltune.reports.load import ReportError
from evaltune.reports.records import REPORT_SCHEMA_VERSION, report_to_dict
from evaltune.reports.render import render_report
from evaltune.reports.report_json import ReportJsonError, load_report_json, report_from_dict
from tests.conftest import invoke_main
from tests.fixtures.answer_server import answer_server
from tests.fixtures.report_seed import HOSTILE, SeededRuns, exact_match, fluency, hallucinated, seed_runs

N = 40



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
    assert metrics["hallucinated"]["q_value"] == pytest.approx(min(1.0, p_sorted[1] * 4 / 2))
    verdicts = {m["name"]: m["verdict"] for m in data["metrics"]}
    assert verdicts == {"exact_match": "no significant change", "hallucinated": "better", "fluency": "better",
                        "sentiment_gap:gender": "no significant change"}
    assert data["verdict"] == "better"
    assert [m["family"] for m in data["metrics"]] == ["bias", "hallucination", "quality", "quality"]


def test_rows_are_the_runs_metrics_with_the_numbers_their_summaries_printed(seeded: tuple[Store, SeededRuns],
                                                                            data: dict) -> None:
    """One name, one number: every row is a stored RunMetric of both runs, under its name, with its stored value."""
    store, ids = seeded
    with store.session_scope() as session:
        stored = {(m.run_id, m.name): m for m in session.scalars(select(RunMetric))}
    assert [m["name"] for m in data["metrics"]] == ["sentiment_gap:gender", "hallucinated", "exact_match", "fluency"]
    for row in data["metrics"]:
        for side, run_id in (("baseline", ids.baseline), ("candidate", ids.candidate)):
            metric = stored[(run_id, row["name"])]
            assert row[side] == {"value": metric.value, "ci_low": metric.ci_low, "ci_high": metric.ci_high,
                                 "n": metric.n}, (row["name"], side)
    assert {row["name"]: row["test"] for row in data["metrics"]} == {
        "sentiment_gap:gender": "unpaired", "hallucinated": "mcnemar", "exact_match": "mcnemar",
        "fluency": "permutation"}


def test_a_run_level_metric_is_compared_by_its_two_intervals(data: dict) -> None:
    """A gap per attribute has no per-item score of its meaning: delta and p from the runs' own intervals."""
    gap = {m["name"]: m for m in data["metrics"]}["sentiment_gap:gender"]
    se = math.hypot(0.29 / (2 * stats.norm.ppf(0.975)), 0.29 / (2 * stats.norm.ppf(0.975)))
    assert gap["delta"] == pytest.approx(0.08 - 0.2)
    assert (gap["delta_ci_low"], gap["delta_ci_high"]) == pytest.approx(
        stats.norm.interval(0.95, loc=0.08 - 0.2, scale=se))
    assert gap["p_value"] == pytest.approx(2 * stats.norm.sf(0.12 / se))
    assert gap["verdict"] == "no significant change"
    # It has no per-item values: no flips, tags or distributions under its name.
    assert not any("sentiment_gap:gender" in f["lost"] + f["gained"] for f in data["flipped"])
    assert "sentiment_gap:gender" not in {t["metric"] for t in data["tags"]}


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
    assert json.loads(render_history(trend, "json"))["schema_version"] == 2
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
    assert "share no items" in at.info[0].value and not at.error  # said plainly, not as an error
    at.selectbox(key="cmp_cand").set_value(ids.candidate)
    at.run()
    assert not at.exception and [s.value for s in at.subheader] == ["Verdict: better"]


# A report JSON as evaltune wrote it before reports carried a version (schema 1), trimmed to a few rows.
# It still has the scorer "rouge", which reported the number "rouge_l" reports.
REPORT_V1 = """{
  "baseline": {"id": 1, "suite": "qa", "suite_version": "a1b2c3d4e5f6", "model": "base-model",
               "model_version_id": 1, "created_at": "2026-10-01T09:00:00"},
  "candidate": {"id": 2, "suite": "qa", "suite_version": "a1b2c3d4e5f6", "model": "tuned-adapter",
                "model_version_id": 2, "created_at": "2026-10-02T09:00:00"},
  "shared_items": 40, "baseline_only": 0, "candidate_only": 0, "verdict": "better",
  "metrics": [
    {"name": "exact_match", "family": "quality", "higher_is_better": true,
     "baseline": {"value": 0.75, "ci_low": 0.6, "ci_high": 0.86, "n": 40},
     "candidate": {"value": 0.85, "ci_low": 0.71, "ci_high": 0.93, "n": 40},
     "delta": 0.1, "delta_ci_low": -0.025, "delta_ci_high": 0.225, "p_value": 0.289, "test": "mcnemar",
     "q_value": 0.289, "verdict": "no significant change"},
    {"name": "rouge", "family": "quality", "higher_is_better": true,
     "baseline": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 40},
     "candidate": {"value": 0.62, "ci_low": 0.52, "ci_high": 0.71, "n": 40},
     "delta": 0.12, "delta_ci_low": 0.05, "delta_ci_high": 0.19, "p_value": 0.001, "test": "permutation",
     "q_value": 0.002, "verdict": "better"}
  ],
  "flipped": [{"key": "q03", "tags": ["history"], "lost": ["exact_match"], "gained": [], "impact": 1,
               "prompt": "Question 3?", "baseline_output": "baseline answer 3", "candidate_output": "no idea"}],
  "tags": [{"tag": "math", "metric": "rouge", "n": 20, "baseline": 0.5, "candidate": 0.6, "delta": 0.1}],
  "bias_gaps": [{"metric": "sentiment_gap", "attribute": "gender", "baseline": null,
                 "candidate": {"value": 0.08, "ci_low": 0.01, "ci_high": 0.3, "n": 12},
                 "baseline_p": null, "candidate_p": 0.4, "change": null}],
  "human": null,
  "lineage": [],
  "gates": [{"metric": "exact_match", "rule": "min", "threshold": 0.6, "passed": true, "actual": 0.85,
             "message": "exact_match = 0.8500 (must be >= 0.6)"}],
  "gates_passed": true
}"""


def test_an_old_unversioned_report_json_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(REPORT_V1)
    report = load_report_json(path)
    assert [m.name for m in report.metrics] == ["exact_match", "rouge_l"]  # "rouge" was ROUGE-L F
    assert report.metrics[1].candidate.value == 0.62 and report.metrics[1].verdict == "better"
    assert report.tags[0].metric == "rouge_l" and report.flipped[0].lost == ["exact_match"]
    gap = report.bias_gaps[0]
    assert gap.baseline is None and gap.baseline_p is None and math.isnan(gap.change)
    assert report.human is None and report.verdict == "better"
    assert report_to_dict(report)["schema_version"] == REPORT_SCHEMA_VERSION == 3
    # Where the old report had both names, "rouge" repeated "rouge_l"'s number and is dropped.
    both = json.loads(REPORT_V1)
    both["metrics"].append({**both["metrics"][1], "name": "rouge_l"})
    migrated = report_from_dict(both)
    assert [m.name for m in migrated.metrics] == ["exact_match", "rouge_l"] and len(migrated.tags) == 0


def test_a_version_2_report_keeps_only_rows_whose_name_means_the_same_number_now(tmp_path: Path) -> None:
    """Version 2 rows were per scorer: ``cf_length_gap`` was a mean length in words (no gap), ``crows_pairs`` the
    number now named ``crows_pairs_pct_stereotype``; read back, no name carries its old meaning."""
    old = json.loads(REPORT_V1)
    old["schema_version"] = 2
    row = old["metrics"][0]
    old["metrics"] = [row, {**row, "name": "cf_length_gap", "family": "bias"},
                      {**row, "name": "crows_pairs", "family": "bias"}]
    old["tags"] = [{**old["tags"][0], "metric": name} for name in ("cf_length_gap", "crows_pairs")]
    old["flipped"][0]["lost"] = ["exact_match", "crows_pairs", "cf_refusal_gap"]
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(old))
    report = load_report_json(path)
    assert [m.name for m in report.metrics] == ["exact_match", "crows_pairs_pct_stereotype"]
    assert [t.metric for t in report.tags] == ["crows_pairs_pct_stereotype"]
    assert report.flipped[0].lost == ["exact_match", "crows_pairs_pct_stereotype"]


def test_the_current_report_json_reads_back_to_the_same_report(seeded: tuple[Store, SeededRuns],
                                                              tmp_path: Path) -> None:
    store, ids = seeded
    with store.session_scope() as session:
        report = build_report(session, ids.baseline, ids.candidate)
    path = tmp_path / "report.json"
    path.write_text(render_report(report, "json"))
    assert json.loads(path.read_text())["schema_version"] == REPORT_SCHEMA_VERSION
    assert report_to_dict(load_report_json(path)) == report_to_dict(report)


@pytest.mark.parametrize(("change", "message"), [
    ({"schema_version": 4}, "written by a newer evaltune (schema_version 4; this one reads up to 3)"),
    ({"schema_version": "2"}, "field 'schema_version' must be a whole number"),
    ({"shared_items": None}, "field 'shared_items' must be int"),
    ({"metrics": [{"name": "exact_match"}]}, "field 'metrics[0].family' is missing"),
])
def test_a_report_json_that_cannot_be_read_names_the_field(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**json.loads(REPORT_V1), **change}))
    with pytest.raises(ReportJsonError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        load_report_json(path)


ORCHARD = ("The Fenwick orchard has 120 apple trees and 35 pear trees. It opens to visitors in September, when the "
           "first apples are ripe, and closes at the first frost, which some years comes in October.")
FLIP_SUITE = f"""\
name: flips
generation: {{max_new_tokens: 32, temperature: 0.0, chat: always, system_prompt: "Answer in one word (SYSTEM)."}}
context_template: "Read the passage.\\n\\nPassage: {{context}}\\n\\nQuestion: {{input}}"
scorers: [answer_match]
items:
  - {{id: japan, input: "What is the capital of Japan?", references: [Tokyo]}}
  - {{id: orchard, input: "How many apple trees are in the orchard?", references: ["120"], context: "{ORCHARD}"}}
  - {{id: peru, input: "What is the capital of Peru?", references: [Lima]}}
"""
FLIP_ANSWERS = {"before": {"Japan": "Tokyo.", "Peru": "Lima."},  # the orchard: "I don't know."
                "after": {"Japan": "<b>Kyoto</b>.", "apple trees": "120 trees.", "Peru": "Lima."}}


def _section(text: str, heading: str, next_heading: str) -> str:
    start = text.index(heading)
    end = text.find(next_heading, start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_flipped_items_show_the_question_as_written_not_the_prompt(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "flips.yaml"
    suite.write_text(FLIP_SUITE, encoding="utf-8")
    with answer_server(FLIP_ANSWERS) as url:
        for name in ("before", "after"):
            code, _out, err = invoke_main(["run", str(suite), "--model", f"openai:{url}", "--model-name", name],
                                          monkeypatch, capsys)
            assert code == 0, err
    code, out, err = invoke_main(["report", "1", "2", "--format", "json"], monkeypatch, capsys)
    assert code == 0, err
    flips = {f["key"]: f for f in json.loads(out)["flipped"]}
    assert set(flips) == {"japan", "orchard"}
    assert flips["japan"]["question"] == "What is the capital of Japan?" and flips["japan"]["lost"] == ["answer_match"]
    # The suite's context_template rewrote the orchard's input; the question is the author's, the context apart.
    assert flips["orchard"]["question"] == "How many apple trees are in the orchard?"
    assert flips["orchard"]["context"].startswith("The Fenwick orchard") and flips["orchard"]["references"] == ["120"]
    assert "(SYSTEM)" in flips["japan"]["prompt"]  # what the model was given, kept in the JSON only
    code, page, err = invoke_main(["report", "1", "2", "--format", "html"], monkeypatch, capsys)
    assert code == 0, err
    shown = _section(page, "<h2>Flipped items", "<h2>")
    assert "What is the capital of Japan?" in shown and "How many apple trees are in the orchard?" in shown
    assert "context: The Fenwick orchard" in shown and "…" in shown and "Tokyo" in shown
    assert "&lt;b&gt;Kyoto&lt;/b&gt;" in shown and "<b>" not in shown
    assert "(SYSTEM)" not in shown and "Read the passage" not in shown and "role" not in shown
    code, text, err = invoke_main(["report", "1", "2", "--format", "md"], monkeypatch, capsys)
    assert code == 0, err
    shown = _section(text, "## Flipped items", "\n## ")
    assert "| japan | What is the capital of Japan? | Tokyo |" in shown
    assert "| orchard | How many apple trees are in the orchard? | 120 |" in shown
    assert "(SYSTEM)" not in shown and "Read the passage" not in shown
