"""Runs that differ in how they were made compare item by item, and the report says what differed.

A suite version is its items (and what they ask); sampling settings, seed and item limit belong to the run. Every
run here goes through the command line in-process, on the tiny model and the built-in ``smoke`` suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaltune.reports.report_json import load_report_json
from tests.conftest import invoke_main

SMOKE_ITEMS = 8
Cli = Callable[..., str]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(*args)`` runs ``evaltune ARGS`` and returns stdout; a non-zero exit fails the test with stderr."""

    def call(*args: str) -> str:
        code, out, err = invoke_main(list(args), monkeypatch, capsys)
        assert code == 0, err
        return out

    return call


def report_json(cli: Cli, baseline: int, candidate: int, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / f"report-{baseline}-{candidate}.json"
    cli("report", str(baseline), str(candidate), "--format", "json", "-o", str(path))
    return json.loads(path.read_text(encoding="utf-8"))


def differed(report: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {d["what"]: (d["baseline"], d["candidate"], d["note"]) for d in report["differences"]}


def test_greedy_and_sampled_runs_pair_on_every_item_and_the_report_names_the_settings(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = str(tiny_model_dir)
    cli("run", "smoke", "--model", model)
    cli("run", "smoke", "--model", model, "--temperature", "1.0", "--top-p", "0.9", "--samples", "2", "--seed", "4")
    report = report_json(cli, 1, 2, tmp_path)
    assert report["shared_items"] == SMOKE_ITEMS and report["baseline_only"] == report["candidate_only"] == 0
    assert report["baseline"]["suite_version"] == report["candidate"]["suite_version"]
    assert differed(report) == {"temperature": ("0", "1", ""), "top-p": ("1", "0.9", ""),
                                "samples per item": ("1", "2", ""), "seed": ("0", "4", "")}
    assert report["candidate"]["generation"]["temperature"] == 1.0 and report["candidate"]["seed"] == 4
    assert load_report_json(tmp_path / "report-1-2.json").differences[0].what == "temperature"

    markdown = cli("report", "1", "2", "--format", "md")
    assert "## What differed" in markdown
    assert "| temperature | 0 | 1 |  |" in markdown and "| samples per item | 1 | 2 |  |" in markdown
    html = cli("report", "1", "2", "--format", "html")
    assert "<h2>What differed</h2>" in html and "<td>top-p</td><td>1</td><td>0.9</td>" in html

    # One suite version: a blind A/B campaign between the two runs is accepted (it used to be refused).
    made = cli("campaigns", "create", "--runs", "1,2", "--pairwise")
    assert made.startswith("campaign 1 ") and f"{SMOKE_ITEMS} A/B pairs" in made


def test_a_limited_run_pairs_with_the_full_run_on_the_items_it_ran(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = str(tiny_model_dir)
    cli("run", "smoke", "--model", model)
    cli("run", "smoke", "--model", model, "--limit", "3", "--max-new-tokens", "8")
    report = report_json(cli, 1, 2, tmp_path)
    assert (report["shared_items"], report["baseline_only"], report["candidate_only"]) == (3, SMOKE_ITEMS - 3, 0)
    assert differed(report) == {"max new tokens": ("32", "8", ""),
                                "items": ("all", "first 3", "compared on the items both ran")}
    assert report["candidate"]["item_limit"] == 3 and report["baseline"]["item_limit"] is None


def test_a_seed_under_greedy_decoding_is_reported_as_making_no_difference(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = str(tiny_model_dir)
    cli("run", "smoke", "--model", model, "--limit", "4")
    # Other scorers make it another run; greedy, its outputs all come from the first run whatever the seed.
    again = cli("run", "smoke", "--model", model, "--limit", "4", "--seed", "9", "--scorers", "exact_match")
    assert "(0 generated, 4 from cache" in again
    assert differed(report_json(cli, 1, 2, tmp_path)) == {
        "seed": ("0", "9", "no effect: both runs decode greedily")}
    assert "Nothing but the outputs" in cli("report", "1", "1", "--format", "md")


def test_a_new_model_or_suite_version_is_named_too(
    cli: Cli, tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path
) -> None:
    model = str(tiny_model_dir)
    cli("run", "smoke", "--model", model, "--limit", "4")
    cli("run", "smoke", "--model", model, "--adapter", str(tiny_adapter_dir), "--limit", "4")
    assert differed(report_json(cli, 1, 2, tmp_path)) == {
        "model": (f"{tiny_model_dir.name} (model:1)", f"{tiny_model_dir.name} + {tiny_adapter_dir.name} (model:2)",
                  "")}

    # A new system prompt changes what every item asks: a new suite version, still compared item by item.
    copy = tmp_path / "smoke.yaml"
    cli("suites", "copy", "smoke", str(copy))
    text = copy.read_text(encoding="utf-8")
    copy.write_text(text.replace("system_prompt: Answer briefly.", "system_prompt: Answer in one word."),
                    encoding="utf-8")
    cli("run", str(copy), "--model", model, "--limit", "4")
    report = report_json(cli, 1, 3, tmp_path)
    assert report["shared_items"] == 4
    found = differed(report)
    assert set(found) == {"suite version", "system prompt"}
    assert found["suite version"][2] == "compared on the item keys both hold"
    assert found["system prompt"][1].startswith("Answer in one word.")


def test_a_report_json_from_before_the_settings_were_kept_still_reads(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    cli("run", "smoke", "--model", str(tiny_model_dir), "--limit", "2")
    report = report_json(cli, 1, 1, tmp_path)
    del report["differences"]
    for side in ("baseline", "candidate"):
        for key in ("seed", "generation", "item_limit", "code_version"):
            del report[side][key]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(report), encoding="utf-8")
    loaded = load_report_json(old)
    assert loaded.differences == [] and loaded.baseline.generation == {} and loaded.baseline.item_limit is None
