"""The hallucination validation bench: its readers of public data (on small snippets written here in each raw
format), the split by passage, the fit that sees only calibration parts, its tables, the judge's table, and the
shipped detector's figures on the real public data when it is on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import validate_hallucination as bench
from bench.detector_fit import auroc, balanced_accuracy
from bench.hallucination_data import CALIBRATION, FIGURES, PUBLIC_SETS, LabelledOutput, part_of
from evaltune import settings
from evaltune.metrics import detector
from evaltune.metrics.grounding import Grounding, SentenceSupport
from evaltune.metrics.novelty import Novelty, novelty
from evaltune.metrics.records import ScoreResult

ROOT = Path(__file__).resolve().parent.parent

Q2_HEADER = ",episode_idx,round,topic,message,response,knowledge,gold\n"
BEGIN_HEADER = "model_name\tdata_source\tknowledge\tmessage\tresponse\tbegin_label\r\n"
TQA_HEADER = ("Type,Category,Question,Best Answer,Best Incorrect Answer,Correct Answers,Incorrect Answers,"
              "Source\n")


def write_public_snippets(data: Path) -> None:
    """A few made-up rows in each public data set's raw format (as their FORMAT.md describes it)."""
    q2 = data / "q2" / "raw"
    q2.mkdir(parents=True)
    (q2 / "dodeca_consistent.csv").write_text(Q2_HEADER + (
        '0,3,1,Lake Orla,"I like lakes, a lot.",lake orla is 12 km long .,Lake Orla is 12 km long and very deep.,ok\n'
        '1,4,0,Tea,,tea comes from the camellia plant .,Tea is made from leaves of the Camellia plant.,yes\n'),
        encoding="utf-8")
    (q2 / "memnet_inconsistent.csv").write_text(Q2_HEADER + (
        '0,3,1,Lake Orla,"I like lakes, a lot.",lake orla is 40 km long .,Lake Orla is 12 km long and very deep.,ok\n'
        '1,9,2,Owls,Owls?,owls were first seen in 1850 in paris .,Owls hunt at night.,hm\n'),
        encoding="utf-8")
    begin = data / "begin" / "raw"
    begin.mkdir(parents=True)
    (begin / "begin_dev_wow.tsv").write_bytes((BEGIN_HEADER + (
        't5\twow\tthe tower (called "the needle") is 90 m tall.\tis it tall?\tthe "needle" is 90 m tall\t'
        'Fully attributable\r\n'
        'gpt2\twow\tthe tower (called "the needle") is 90 m tall.\tis it tall?\tit was built by romans\t'
        'Not fully attributable\r\n'
        'ctrl\twow\tthe tower (called "the needle") is 90 m tall.\tis it tall?\tthat sounds fun!\tGeneric\r\n'
    )).encode("utf-8"))
    for name in ("xsumfaith", "factcc"):
        folder = data / name / "raw"
        folder.mkdir(parents=True)
        records = {f"{name}_0": {"document": "The mayor of Brill opened a bridge on Monday. It cost 3 million.",
                                 "claim": "Brill's mayor opened a bridge.", "label": 1, "model_name": "m"},
                   f"{name}_1": {"document": "The mayor of Brill opened a bridge on Monday. It cost 3 million.",
                                 "claim": "The bridge cost 9 million pounds.", "label": 0, "model_name": "m"}}
        (folder / f"{name}.json").write_text(json.dumps(records, indent=4), encoding="utf-8")
    tqa = data / "truthfulqa" / "raw"
    tqa.mkdir(parents=True)
    (tqa / "TruthfulQA.csv").write_text(TQA_HEADER + (
        'Adversarial,Myths,Do owls turn their heads fully around?,Owls can turn their heads about 270 degrees,'
        'Owls turn their heads 360 degrees,"Owls can turn their heads about 270 degrees; No, about three quarters",'
        '"Yes, owls turn their heads 360 degrees; Owls can spin their heads forever",https://example.org\n'),
        encoding="utf-8")


@pytest.fixture
def snippets(tmp_path: Path) -> Path:
    write_public_snippets(tmp_path / "data")
    return tmp_path / "data"


def read(name: str, data: Path) -> list[LabelledOutput]:
    return PUBLIC_SETS[name].reader(data / name / "raw")


def test_readers_take_source_output_and_label_from_each_raw_format(snippets: Path) -> None:
    q2 = read("q2", snippets)
    assert [(r.label, r.output) for r in q2] == [
        (0, "lake orla is 12 km long ."), (0, "tea comes from the camellia plant ."),
        (1, "lake orla is 40 km long ."), (1, "owls were first seen in 1850 in paris .")]
    assert q2[0].source == "Lake Orla is 12 km long and very deep." and q2[0].prompt == "I like lakes, a lot."
    begin = read("begin", snippets)  # quotes are literal, CRLF endings, the Generic response left out
    assert [(r.label, r.output) for r in begin] == [(0, 'the "needle" is 90 m tall'), (1, "it was built by romans")]
    assert begin[0].source == 'the tower (called "the needle") is 90 m tall.'
    for name in ("xsumfaith", "factcc"):  # SummaC's label 1 means consistent
        assert [(r.label, r.output) for r in read(name, snippets)] == [
            (0, "Brill's mayor opened a bridge."), (1, "The bridge cost 9 million pounds.")]
    tqa = read("truthfulqa", snippets)  # the Best Answer is the reference, never an output
    assert [(r.label, r.output) for r in tqa] == [
        (0, "No, about three quarters"), (1, "Yes, owls turn their heads 360 degrees"),
        (1, "Owls can spin their heads forever")]
    assert {(r.source, r.mode) for r in tqa} == {("Owls can turn their heads about 270 degrees", "reference")}


def test_split_keeps_each_passage_on_one_side_and_is_the_same_in_every_process(snippets: Path) -> None:
    rows = [r for name in PUBLIC_SETS for r in read(name, snippets)]
    by_passage: dict[str, set[str]] = {}
    for row in rows:
        by_passage.setdefault(row.source, set()).add(row.part)
    assert all(len(parts) == 1 for parts in by_passage.values())
    passages = [f"Passage number {k} says something about the river." for k in range(400)]
    here = [part_of(p) for p in passages]
    assert 0.4 < here.count(CALIBRATION) / len(here) < 0.6
    code = ("import json, sys; from bench.hallucination_data import part_of; "
            "print(json.dumps([part_of(p) for p in json.loads(sys.stdin.read())]))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, input=json.dumps(passages), env=env,
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(other) == here
    assert part_of("a  passage\nwith spacing") == part_of("a passage with spacing")


def test_novelty_counts_the_output_words_and_word_pairs_its_source_lacks() -> None:
    source = "The Harlow Bridge was designed by the engineer Thomas Avery in 1887."
    assert novelty("The Harlow Bridge was designed by the engineer Thomas Avery in 1887.", source) == Novelty(
        0.0, 0.0, 10)
    reworded = novelty("Thomas Avery designs bridges.", source)  # same stems ("desig", "bridg"), new order
    assert reworded.words == 0.0 and reworded.pairs > 0.5
    invented = novelty("It was painted red by volunteers.", source)
    assert invented.words == 1.0 and invented.pairs == 1.0
    assert novelty("", source) == Novelty(0.0, 0.0, 10)


@pytest.mark.parametrize("source_words", [1, 12, 300, 1000, 50_000])
def test_an_output_that_restates_its_source_is_never_flagged_whatever_the_source_length(source_words: int) -> None:
    restated = Grounding((SentenceSupport("s", 1.0, "s"),), (), Novelty(0.0, 0.0, source_words))
    result = detector.grounded_result(0.0, [], restated, None)
    assert not result.details["hallucinated"] and result.details["threshold"] == detector.DECISION_THRESHOLD
    assert set(result.details["signals"]) == set(detector.SIGNALS) >= set(detector.COMBINATION_WEIGHTS)
    assert tuple(detector.COMBINATION_WEIGHTS) == detector.FIT_SIGNALS  # the shipped weights are the fitted ones


def test_auroc_counts_ties_as_half_and_matches_the_pairwise_definition() -> None:
    labels, scores = [1, 1, 0, 0, 1, 0], [0.9, 0.4, 0.4, 0.1, 0.7, 0.8]
    pairs = [(p, n) for p, yp in zip(scores, labels, strict=True) if yp
             for n, yn in zip(scores, labels, strict=True) if not yn]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert auroc(labels, scores) == pytest.approx(expected)
    assert balanced_accuracy(labels, [s >= 0.5 for s in scores]) == pytest.approx((2 / 3 + 2 / 3) / 2)


def _result(signal: float) -> ScoreResult:
    """A grounded_hallucination result whose signals are all ``signal``."""
    return ScoreResult(0.0, {"signals": dict.fromkeys(detector.FIT_SIGNALS, signal)})


def test_fit_sees_only_the_calibration_parts() -> None:
    passages = [f"Source passage {k} about the harbour." for k in range(60)]
    rows = [LabelledOutput("made_up", f"r{k}", p, "out", k % 2) for k, p in enumerate(passages)]
    results = [_result(0.8 if r.label else 0.1) for r in rows]
    sets, found = {"made_up": rows}, {"made_up": results}
    fitted = bench.fit_constants(sets, found, ["made_up"])
    assert fitted["fitted_on"] == {"made_up": sum(r.part == CALIBRATION for r in rows)}
    # Scrambling every figures-part row changes nothing that the fit chose.
    scrambled = [_result(0.5) if r.part == FIGURES else res for r, res in zip(rows, results, strict=True)]
    flipped = [LabelledOutput(r.dataset, r.item_id, r.source, r.output, 1 - r.label) if r.part == FIGURES else r
               for r in rows]
    assert bench.fit_constants({"made_up": flipped}, {"made_up": scrambled}, ["made_up"]) == fitted
    assert all(w > 0 for w in fitted["COMBINATION_WEIGHTS"].values())  # higher signals, more hallucinated


def test_bench_command_reports_each_part_with_intervals_and_skips_what_is_absent(
        snippets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("factcc", "begin"):
        for path in (snippets / name / "raw").iterdir():
            path.unlink()
    args = ["--data", str(snippets), "--limit", "6", "--fit", "--json", str(tmp_path / "r.json"),
            "--markdown", str(tmp_path / "r.md"), "--signals", str(tmp_path / "signals.jsonl")]
    report = bench.main(args)
    out = capsys.readouterr().out
    assert "skipped factcc:" in out and "skipped begin:" in out and "is absent or empty" in out
    assert "q2: calibration part" in out and "judge" not in json.loads((tmp_path / "r.json").read_text())
    lines = json.loads((tmp_path / "r.json").read_text())["offline"]
    assert {line["dataset"] for line in lines} == {"q2", "xsumfaith", "truthfulqa", "evaltune_own",
                                                    bench.POOLED, bench.MACRO}
    pooled = [line for line in lines if line["dataset"] == bench.POOLED]
    assert len(pooled) == 1 and pooled[0]["part"] == FIGURES
    assert pooled[0]["n"] == sum(line["n"] for line in lines if line["part"] == FIGURES
                                 and line["dataset"] not in ("evaltune_own", bench.POOLED, bench.MACRO))
    for line in lines:
        assert set(line) >= {"dataset", "part", "n", "hallucinated", "balanced_accuracy", "auroc"}
        assert line["part"] == FIGURES or line["dataset"] not in (bench.POOLED, bench.MACRO)
        assert set(line["auroc"]) == {"value", "ci_low", "ci_high"}
    assert "| data set | part | n | hallucinated | balanced accuracy | AUROC |" in (tmp_path / "r.md").read_text()
    assert report["fit"]["fitted_on"].keys() == {"q2", "xsumfaith", "truthfulqa", "evaltune_own"}
    again = bench.main(args)  # the stored signals give the same tables without scoring again
    assert "outputs' signals read from" in capsys.readouterr().out and again["offline"] == report["offline"]
    with_figures = {line["dataset"] for line in lines if line["part"] == FIGURES} - {"evaltune_own", bench.POOLED,
                                                                                   bench.MACRO}
    assert {line["dataset"] for line in report["leave_one_dataset_out"]} == with_figures


def test_fit_on_a_data_set_that_was_not_read_is_refused_with_the_ones_that_were(
        snippets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--data", str(snippets), "--fit", "--fit-on", "q2,xsum"])
    assert stopped.value.code == 2
    assert "--fit-on: xsum not read; name some of those read: q2, begin, xsumfaith, factcc, truthfulqa, " \
           "evaltune_own" in capsys.readouterr().err


@pytest.mark.slow
def test_judge_table_scores_the_figures_parts_with_the_named_judge(
        snippets: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)
    sets = {"q2": read("q2", snippets), "xsumfaith": read("xsumfaith", snippets)}
    assert bench.judge_table(sets) == []
    assert "judge skipped: set EVALTUNE_JUDGE_MODEL" in capsys.readouterr().out
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", str(tiny_model_dir))
    lines = bench.judge_table(sets)
    figures = {name: [r for r in rows if r.part == FIGURES] for name, rows in sets.items()}
    assert [line["dataset"] for line in lines] == [name for name, rows in figures.items() if rows]
    for line in lines:
        assert line["n"] + line["ungraded"] == len(figures[line["dataset"]])
        assert line["judge"] == str(tiny_model_dir) and set(line["balanced_accuracy"]) == {"value", "ci_low",
                                                                                            "ci_high"}


def _public_data() -> Path | None:
    found = settings.hallucination_data()
    return found if found is not None and found.is_dir() and any(found.glob("*/raw/*")) else None


@pytest.mark.slow
@pytest.mark.skipif(_public_data() is None, reason="no public labelled data: set EVALTUNE_HALLUCINATION_DATA to "
                    "the folder the bench reads (see bench/hallucination_data.py for the data sets and their sources)")
def test_shipped_detector_reaches_its_documented_figure_on_public_figures_parts() -> None:
    # Measured as README documents it (q2, begin, xsumfaith, factcc, truthfulqa --limit 1600): see detector.FITTED_ON.
    data = _public_data()
    assert data is not None
    quiet = lambda line: None  # noqa: E731
    sets = bench.load(data, None, 1600, say=quiet)
    fit_on = [name for name in detector.FITTED_ON if name in sets]
    report: dict[str, Any] = bench.evaluate(sets, True, False, say=quiet, fit_on=fit_on)
    [pooled] = [line for line in report["offline"] if line["dataset"] == bench.POOLED]
    assert pooled["balanced_accuracy"]["value"] >= 0.65
    if fit_on == list(detector.FITTED_ON):  # every data set the constants were fitted on is here
        assert report["fit"]["COMBINATION_BIAS"] == pytest.approx(detector.COMBINATION_BIAS, abs=0.011)
        assert report["fit"]["COMBINATION_WEIGHTS"] == pytest.approx(detector.COMBINATION_WEIGHTS, abs=0.011)
