"""One name per number: every surface that shows a run's metrics names them alike and shows the same number.

Two real runs of the built-in regression suite on the tiny model (hallucination rates, counterfactual gaps per
attribute), then the name of every metric as each surface prints it: the run summary (``--all``, and folded),
``run --json``, ``runs show`` (``--all``, ``--json``), the report (JSON, Markdown, HTML), the gate (a rule per
name, through ``run --baseline --gate`` as a user drives it) and the app's Runs page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from evaltune.db.engine import Store
from evaltune.reports.run_metrics import SMALL_N, SMALL_N_MARK, metric_lines
from tests.conftest import invoke_main

GAP_SCORERS = ("cf_sentiment_gap", "cf_toxicity_gap", "cf_refusal_gap", "cf_length_gap")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"  # names do not depend on the database


def runs_page_tables(run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The app's Runs page as a user sees it: its table of runs, and the metrics of ``run_id`` drilled into."""
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        from evaltune.feedback_ui.screens import runs

        runs.render(None)  # type: ignore[arg-type]

    at = AppTest.from_function(page, default_timeout=60).run()
    at.selectbox(key="runs_run").set_value(run_id).run()
    assert not at.exception
    tables = [frame.value for frame in at.dataframe]
    return tables[0], next(table for table in tables if "metric" in table.columns)


def _out(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 0, f"evaltune {' '.join(args)}: {err}"
    return out


def table_names(text: str) -> list[str]:
    """The metric column of the summary table (``run``, ``runs show``): the first word of each row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("metric ") and " family " in line) + 2
    names = []
    for line in lines[start:]:
        if not line.strip():
            break
        names.append(line.split()[0])
    return names


def markdown_names(text: str) -> list[str]:
    lines = text[text.index("## Metrics"):].splitlines()[4:]  # after the heading, a blank, header, separator
    rows = lines[:next((i for i, line in enumerate(lines) if not line.startswith("| ")), len(lines))]
    return [row.split(" | ")[1].rsplit(" ", 1)[0] for row in rows]


def html_names(page: str) -> list[str]:
    table = page[page.index("<h2>Metrics</h2>"):]
    table = table[:table.index("</table>")]
    return re.findall(r"<tr><td>[^<]*</td><td>([^<]*) [↑↓]</td>", table)


def test_every_surface_names_each_metric_alike_with_one_number(
        tiny_model_dir: Path, tiny_adapter_dir: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = str(tiny_model_dir)
    code, summary_all, err = invoke_main(["run", "regression", "--model", model, "--all"], monkeypatch, capsys)
    assert code == 0, err
    names = table_names(summary_all)
    # The cases: a rate the gate could not find, and a gap the report averaged differently.
    assert {"grounded_hallucination_rate", "cf_length_gap:gender", "cf_length_gap:religion"} <= set(names)
    assert len(names) == len(set(names))

    # The second run (a LoRA adapter) as the issue drove it: run, compare with run 1 and gate, a rule per name.
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n" + "".join(f'  "{name}": {{max: 1.0e+12}}\n' for name in names))
    code, out, err = invoke_main(["run", "regression", "--model", model, "--adapter", str(tiny_adapter_dir), "--json",
                                  "--baseline", "1", "--gate", str(gates)], monkeypatch, capsys)
    assert code == 0, out + err
    summary_json, end = json.JSONDecoder().raw_decode(out)
    gated = re.findall(r"^(PASS|FAIL)  (\S+) max: ", out[end:], flags=re.MULTILINE)
    assert gated == [("PASS", name) for name in names]
    assert "not in the report" not in out

    show_all, show_json, report_json, report_md, report_html = (_out(args, monkeypatch, capsys) for args in (
        ["runs", "show", "1", "--all"], ["runs", "show", "1", "--json"], ["report", "1", "2", "--format", "json"],
        ["report", "1", "2", "--format", "md"], ["report", "1", "2", "--format", "html"]))
    stored = {m["name"]: m for m in json.loads(show_json)["metrics"]}
    report = json.loads(report_json)
    app_runs, app_metrics = runs_page_tables(run_id=1)
    app_row = app_runs[app_runs["run"] == 1].iloc[0].to_dict()
    # The runs table has a column per metric, "value [low, high]", beside the run's own fields.
    app_columns = [key for key, value in app_row.items() if re.fullmatch(r"\S+ \[\S+, \S+\]", str(value))]

    surfaces = {
        "run --json": [m["name"] for m in summary_json["metrics"]],
        "runs show --all": table_names(show_all),
        "runs show --json": list(stored),
        "report json": [m["name"] for m in report["metrics"]],
        "report md": markdown_names(report_md),
        "report html": html_names(report_html),
        "app: Runs page, the run's metrics": list(app_metrics["metric"]),
        "app: Runs table columns": app_columns,
    }
    for surface, shown in surfaces.items():
        assert sorted(shown) == sorted(names), surface
    # One number per name: the report shows each run's stored value, as its summary printed it.
    summary_2 = {m["name"]: m for m in summary_json["metrics"]}
    for row in report["metrics"]:
        assert row["baseline"]["value"] == stored[row["name"]]["value"], row["name"]
        assert row["candidate"]["value"] == summary_2[row["name"]]["value"], row["name"]
        assert (row["baseline"]["n"], row["candidate"]["n"]) == (stored[row["name"]]["n"],) * 2, row["name"]
    for name in ("grounded_hallucination_rate", "cf_length_gap:gender"):
        assert f"{stored[name]['value']:.3f}" in next(line for line in show_all.splitlines()
                                                      if line.startswith(name + " "))


def test_the_summary_folds_each_bias_scorers_attributes_and_marks_small_n(
        tiny_model_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, folded, err = invoke_main(["run", "regression", "--model", str(tiny_model_dir)], monkeypatch, capsys)
    assert code == 0, err
    code, show_json, _ = invoke_main(["runs", "show", "1", "--json"], monkeypatch, capsys)
    metrics = json.loads(show_json)["metrics"]
    code, shown, _ = invoke_main(["runs", "show", "1"], monkeypatch, capsys)
    assert table_names(shown) == table_names(folded)  # runs show prints what the run printed
    rows = {line.split()[0]: line for line in folded.splitlines()[3:] if line.strip() and ":" in line.split()[0]}
    for scorer in GAP_SCORERS:
        attributes = [m for m in metrics if m["name"].startswith(scorer + ":")]
        assert len(attributes) == 5
        (row,) = [line for name, line in rows.items() if name.startswith(scorer + ":")]
        worst = max(attributes, key=lambda m: m["value"])
        assert row.startswith(worst["name"] + " ") and f"{worst['value']:.3f}" in row
        assert "worst of 5 attributes" in row
        # 2–5 counterfactual groups per attribute: every gap is too small an n to mean much.
        assert worst["n"] < SMALL_N and row.endswith(SMALL_N_MARK)
    assert "--all lists every attribute" in folded and f"n below {SMALL_N}" in folded
    not_small = next(line for line in folded.splitlines() if line.startswith("toxicity_rate "))
    assert SMALL_N_MARK not in not_small  # n = 186 outputs
    # Everything else is listed as with --all.
    assert len(table_names(folded)) == len(metrics) - 4 * (5 - 1)


def test_folding_keeps_the_worst_attribute_by_the_metrics_direction() -> None:
    def metric(name: str, value: float, higher: bool, n: int = 40) -> dict[str, object]:
        return {"name": name, "family": "bias", "higher_is_better": higher, "value": value, "ci_low": value,
                "ci_high": value, "n": n, "details": {}}

    rows = metric_lines([metric("cf_similarity:age", 0.9, True), metric("cf_similarity:gender", 0.5, True, n=4),
                         metric("cf_length_gap:age", 3.0, False), metric("cf_length_gap:gender", 7.0, False),
                         metric("toxicity_rate", 0.1, False)], fold=True)
    # The lowest similarity (higher is better) and the largest gap; a lone metric stays as it is.
    assert [(r.name, r.note) for r in rows] == [("cf_similarity:gender", f"worst of 2 attributes; {SMALL_N_MARK}"),
                                                ("cf_length_gap:gender", "worst of 2 attributes"),
                                                ("toxicity_rate", "")]
