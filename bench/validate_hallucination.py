"""Validate the offline hallucination detector (and the judge) on human-labelled data it was not written for.

    python bench/validate_hallucination.py --data /work/data/hallucination --truthfulqa FOLDER
    python bench/validate_hallucination.py --fit        # also fit the detector's constants (calibration parts)
    python bench/validate_hallucination.py --judge      # also score the figures parts with EVALTUNE_JUDGE_MODEL
    python bench/validate_hallucination.py --json out.json --markdown out.md --limit 1600
    python bench/validate_hallucination.py --signals signals.jsonl --fit   # re-fit without scoring again

Public data sets are read from ``--data`` (default ``$EVALTUNE_HALLUCINATION_DATA``), one folder each
(``q2``, ``begin``, ``xsumfaith``, ``factcc``: see bench/hallucination_data.py for their formats and citations);
TruthfulQA from ``--truthfulqa`` or ``<data>/truthfulqa/raw``. An absent data set is skipped, and the bench says so.
The project's own set (tests/data/hallucination_labelled.jsonl) is always reported, never pooled with public data:
it was written knowing the heuristics.

Every public data set is split by passage (a hash of its text) into a calibration part and a figures part.
``--fit`` sees only calibration parts; the figures are measured on figures parts only. Leave-one-dataset-out
figures fit on the other data sets' calibration parts and score this one's figures part: the transfer to an
unseen data set is what a team's own data will see.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detector_fit import (  # noqa: E402
    Figure,
    balancing_weights,
    clustered_figures,
    fit_logistic,
)
from bench.hallucination_data import (  # noqa: E402
    CALIBRATION,
    FIGURES,
    OWN_NAME,
    PUBLIC_SETS,
    LabelledOutput,
    find_public,
    read_own,
)
from evaltune import settings  # noqa: E402
from evaltune.harness.judges.config import judge_from_settings  # noqa: E402
from evaltune.harness.judges.judge import judging_for  # noqa: E402
from evaltune.metrics import detector  # noqa: E402
from evaltune.metrics.judging import no_judge_reason  # noqa: E402
from evaltune.metrics.records import Example, ScoreResult  # noqa: E402
from evaltune.metrics.registry import get_scorer  # noqa: E402

POOLED = "public pooled"
MACRO = "public mean of data sets"
CHUNK = 200  # outputs scored per call, so progress shows on long data sets


def load(data: Path | None, truthfulqa: Path | None, limit: int | None,
         say: Any = print) -> dict[str, list[LabelledOutput]]:
    """Each data set's rows (public ones that are present, then the project's own), at most ``limit`` each."""
    found: dict[str, list[LabelledOutput]] = {}
    for name, folder, absent in find_public(data, truthfulqa):
        if folder is None:
            say(f"skipped {name}: {absent}")
            continue
        try:
            rows = PUBLIC_SETS[name].reader(folder)
        except (OSError, ValueError, KeyError) as error:  # a half-fetched file: say so, measure the rest
            say(f"skipped {name}: {folder} could not be read ({type(error).__name__}: {error})")
            continue
        found[name] = take_passages(rows, limit) if limit else rows
        say(f"read {name}: {len(rows)} outputs from {folder}" + (f", {len(found[name])} kept (--limit)" if limit
                                                                 and len(found[name]) < len(rows) else ""))
    own = read_own()
    found[OWN_NAME] = take_passages(own, limit) if limit else own
    return found


def take_passages(rows: Sequence[LabelledOutput], limit: int) -> list[LabelledOutput]:
    """Whole passages, in the order of a hash of their text, until ``limit`` outputs: a fixed, unbiased subset."""
    by_passage: dict[str, list[LabelledOutput]] = {}
    for row in rows:
        by_passage.setdefault(row.source, []).append(row)
    kept: list[LabelledOutput] = []
    for passage in sorted(by_passage, key=lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest()):
        if len(kept) >= limit:
            break
        kept.extend(by_passage[passage])
    return kept


def to_example(row: LabelledOutput) -> Example:
    if row.mode == "reference":
        return Example(item_id=row.item_id, prompt=row.prompt, output=row.output, references=(row.source,))
    return Example(item_id=row.item_id, prompt=row.prompt, output=row.output, context=row.source)


def score(name: str, rows: Sequence[LabelledOutput], say: Any = print) -> list[ScoreResult]:
    """The scorer ``name``'s result on every row, in chunks (with a line of progress each)."""
    spec = get_scorer(name)
    results: list[ScoreResult] = []
    start = time.perf_counter()
    for begin in range(0, len(rows), CHUNK):
        results += spec.score_batch([to_example(r) for r in rows[begin:begin + CHUNK]])
        say(f"  {name}: {len(results)}/{len(rows)} outputs, {time.perf_counter() - start:.0f} s")
    return results


# --- the tables ---


def figures_line(dataset: str, part: str, rows: Sequence[LabelledOutput], scores: Sequence[float],
                 flags: Sequence[bool]) -> dict[str, Any]:
    """n, hallucinated share, balanced accuracy at the flags and AUROC of the scores, each with its 95% CI."""
    labels = [r.label for r in rows]
    bacc, area = clustered_figures(labels, scores, flags, [f"{r.dataset}|{r.source}" for r in rows])
    return {"dataset": dataset, "part": part, "n": len(rows), "hallucinated": int(sum(labels)),
            "balanced_accuracy": bacc.as_dict(), "auroc": area.as_dict(),
            "text": (bacc.text(), area.text())}


def offline_table(sets: dict[str, list[LabelledOutput]], results: dict[str, list[ScoreResult]],
                  threshold: float) -> list[dict[str, Any]]:
    """Per data set and part (calibration, figures), then the pooled public figures part."""
    lines = []
    pooled: list[tuple[LabelledOutput, float]] = []
    for name, rows in sets.items():
        values = [_value(r) for r in results[name]]
        for part in (CALIBRATION, FIGURES):
            picked = [i for i, r in enumerate(rows) if r.part == part]
            if not picked:
                continue
            chosen = [rows[i] for i in picked]
            scores = [values[i] for i in picked]
            lines.append(figures_line(name, part, chosen, scores, [s >= threshold for s in scores]))
            if part == FIGURES and name != OWN_NAME:
                pooled += zip(chosen, scores, strict=True)
    if pooled:
        rows_, scores_ = zip(*pooled, strict=True)
        lines.append(figures_line(POOLED, FIGURES, rows_, scores_, [s >= threshold for s in scores_]))
        lines.append(macro_line([ln for ln in lines if ln["part"] == FIGURES and ln["dataset"] not in
                                 (OWN_NAME, POOLED)]))
    return lines


def macro_line(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of the data sets' figures: every data set counts once, however many outputs it has."""
    means = {key: Figure(float(np.mean([ln[key]["value"] for ln in lines if ln[key]["value"] is not None])),
                         float("nan"), float("nan")) for key in ("balanced_accuracy", "auroc")}
    return {"dataset": MACRO, "part": FIGURES, "n": sum(ln["n"] for ln in lines),
            "hallucinated": sum(ln["hallucinated"] for ln in lines),
            "balanced_accuracy": means["balanced_accuracy"].as_dict(), "auroc": means["auroc"].as_dict(),
            "text": (means["balanced_accuracy"].text(), means["auroc"].text())}


def _value(result: ScoreResult) -> float:
    return float(result.value) if result.value is not None else 0.0


# --- fitting the detector's constants ---


def feature_matrix(results: Sequence[ScoreResult]) -> np.ndarray:
    """The signals the fit weighs (detector.FIT_SIGNALS), one row per result."""
    rows = [[r.details["signals"][n] for n in detector.FIT_SIGNALS] for r in results]
    return np.array(rows, dtype=float).reshape(len(rows), len(detector.FIT_SIGNALS))


def fit_constants(sets: dict[str, list[LabelledOutput]], results: dict[str, list[ScoreResult]],
                  use: Sequence[str]) -> dict[str, Any]:
    """The combination's bias and weights, fitted on the calibration parts of the data sets in ``use`` only
    (each data set weighing the same, each label half of it), rounded to two decimals."""
    rows, signals, groups = [], [], []
    for name in use:
        for row, result in zip(sets[name], results[name], strict=True):
            if row.part == CALIBRATION and "signals" in result.details:  # the exact checks need no weights
                rows.append(row)
                signals.append(result)
                groups.append(name)
    labels = np.array([r.label for r in rows])
    w = np.round(fit_logistic(feature_matrix(signals), labels, balancing_weights(labels, groups)), 2)
    return {"COMBINATION_BIAS": float(w[0]),
            "COMBINATION_WEIGHTS": dict(zip(detector.FIT_SIGNALS, map(float, w[1:]), strict=True)),
            "fitted_on": {name: sum(r.dataset == name for r in rows) for name in use}}


def rescored(constants: dict[str, Any], results: Sequence[ScoreResult]) -> list[float]:
    """grounded_hallucination of each result under other constants (no NLI); a result decided by an exact check
    (a reference match, a structured output's parts) keeps its score."""
    bias, weights = constants["COMBINATION_BIAS"], constants["COMBINATION_WEIGHTS"]
    return [detector.combine(r.details["signals"], bias, weights) if "signals" in r.details else _value(r)
            for r in results]


def leave_one_out(sets: dict[str, list[LabelledOutput]], results: dict[str, list[ScoreResult]],
                  threshold: float, fit_on: Sequence[str]) -> list[dict[str, Any]]:
    """For each public data set: fit on the calibration parts of the other data sets of ``fit_on``, score its
    figures part."""
    lines = []
    for held_out in (name for name in sets if name != OWN_NAME):
        others = [n for n in fit_on if n != held_out]
        constants = fit_constants(sets, results, others)
        picked = [i for i, r in enumerate(sets[held_out]) if r.part == FIGURES]
        if not picked:
            continue
        scores = rescored(constants, [results[held_out][i] for i in picked])
        line = figures_line(held_out, f"{FIGURES}, fit without it", [sets[held_out][i] for i in picked], scores,
                            [s >= threshold for s in scores])
        lines.append(line | {"fitted_on": others})
    return lines


# --- the judge ---


def judge_table(sets: dict[str, list[LabelledOutput]], say: Any = print) -> list[dict[str, Any]]:
    """The judge EVALTUNE_JUDGE_MODEL names on every figures part: the product's ``judge`` scorer, which flags an
    output at 0.5 or more (a faithfulness grade of 3 of 5 or worse). Empty, saying why, when no judge is named."""
    spec = judge_from_settings()
    if spec is None:
        say(f"judge skipped: {no_judge_reason('the judge table')}")
        return []
    lines = []
    with judging_for(spec):
        for name, rows in sets.items():
            lines += _judge_lines(name, [r for r in rows if r.part == FIGURES], say)
    return lines


def _judge_lines(name: str, picked: list[LabelledOutput], say: Any) -> list[dict[str, Any]]:
    lines = []
    if picked:
        results = score("judge", picked, say)
        graded = [(row, float(r.value)) for row, r in zip(picked, results, strict=True) if r.value is not None]
        if graded:
            kept, values = zip(*graded, strict=True)
            line = figures_line(name, FIGURES, kept, values, [v >= 0.5 for v in values])
            lines.append(line | {"ungraded": len(picked) - len(graded), "judge": results[0].details.get("judge")})
    return lines


# --- the report ---


def offline_results(sets: dict[str, list[LabelledOutput]], signals: Path | None,
                    say: Any = print) -> dict[str, list[ScoreResult]]:
    """Each row's grounded_hallucination result. With ``signals`` (a JSON-lines file), rows whose signals it holds
    are not scored again: their score is the shipped combination of the stored signals (what the scorer computes
    without an NLI model); the rows scored now are added to it. Delete the file after changing how a signal is
    measured; changing the constants needs no new scoring."""
    stored = _read_signals(signals)
    results: dict[str, list[ScoreResult]] = {}
    for name, rows in sets.items():
        missing = [r for r in rows if (name, r.item_id) not in stored]
        fresh = dict(zip((r.item_id for r in missing), score("grounded_hallucination", missing, say), strict=True))
        if signals is not None and fresh:
            with signals.open("a", encoding="utf-8") as handle:
                for item_id, result in fresh.items():
                    handle.write(json.dumps({"dataset": name, "item_id": item_id, "value": result.value,
                                             "signals": result.details.get("signals"),
                                             "signal": result.details.get("signal")}) + "\n")
        if len(missing) < len(rows):
            say(f"  {name}: {len(rows) - len(missing)} outputs' signals read from {signals}")
        results[name] = [fresh[r.item_id] if r.item_id in fresh else _from_signals(stored[name, r.item_id])
                         for r in rows]
    return results


def _read_signals(path: Path | None) -> dict[tuple[str, str], dict[str, Any]]:
    if path is None or not path.is_file():
        return {}
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(line["dataset"], line["item_id"]): line for line in lines}


def _from_signals(stored: dict[str, Any]) -> ScoreResult:
    """The stored result: the detector's combination of its signals, or the score an exact check gave."""
    signals = stored.get("signals")
    value = detector.combine(signals) if signals else stored["value"]
    details = {"signals": signals} if signals else {"signal": stored.get("signal")}
    return ScoreResult(value, {**details, "hallucinated": value is not None and value >= detector.DECISION_THRESHOLD})


def evaluate(sets: dict[str, list[LabelledOutput]], fit: bool, judge: bool, say: Any = print,
             signals: Path | None = None, fit_on: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores every row with the shipped detector; the tables, and on request the fit (on the calibration parts of
    ``fit_on``, default all) and the judge's table."""
    results = offline_results(sets, signals, say)
    threshold = detector.DECISION_THRESHOLD
    report: dict[str, Any] = {
        "threshold": threshold,
        "parts": {name: {part: sum(r.part == part for r in rows) for part in (CALIBRATION, FIGURES)}
                  for name, rows in sets.items()},
        "offline": offline_table(sets, results, threshold),
        "leave_one_dataset_out": leave_one_out(sets, results, threshold, list(fit_on or sets)),
    }
    if fit:  # the own set's calibration half joins: it holds the intrinsic errors (swapped names, numbers)
        constants = fit_constants(sets, results, list(fit_on or sets))
        report["fit"] = constants
        refit = {name: [v for v in rescored(constants, results[name])] for name in sets}
        refit_results = {name: [ScoreResult(v, {}) for v in values] for name, values in refit.items()}
        report["offline_refit"] = offline_table(sets, refit_results, threshold)
    if judge:
        report["judge"] = judge_table(sets, say)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report's tables as Markdown."""
    out = [f"Decision threshold {report['threshold']}; 95% CIs by bootstrap over passages.", ""]
    sections = [("Offline detector (grounded_hallucination, as shipped)", "offline"),
                ("Leave one data set out (constants fitted on the other data sets' calibration parts)",
                 "leave_one_dataset_out"),
                ("Offline detector with the constants --fit just chose", "offline_refit"),
                ("Judge (EVALTUNE_JUDGE_MODEL), figures parts", "judge")]
    for title, key in sections:
        if not report.get(key):
            continue
        out += [f"### {title}", "", "| data set | part | n | hallucinated | balanced accuracy | AUROC |",
                "|---|---|---:|---:|---|---|"]
        out += [f"| {ln['dataset']} | {ln['part']} | {ln['n']} | {ln['hallucinated']} | {ln['text'][0]} | "
                f"{ln['text'][1]} |" for ln in report[key]]
        out.append("")
    if "fit" in report:
        out += ["Constants fitted on the calibration parts: `" + json.dumps(report["fit"]) + "`", ""]
    return "\n".join(out)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_data = settings.hallucination_data()
    parser.add_argument("--data", type=Path, default=default_data,
                        help="folder of public data sets (<name>/raw/...); default $EVALTUNE_HALLUCINATION_DATA")
    parser.add_argument("--truthfulqa", type=Path, help="folder holding TruthfulQA.csv (default <data>/truthfulqa/raw)")
    parser.add_argument("--fit", action="store_true", help="fit the detector's constants on the calibration parts")
    parser.add_argument("--fit-on", help="comma-separated data sets whose calibration parts --fit uses "
                        "(default: every one read, the own set included)")
    parser.add_argument("--judge", action="store_true", help="also score the figures parts with the judge")
    parser.add_argument("--limit", type=int, help="at most this many outputs per data set (whole passages)")
    parser.add_argument("--signals", type=Path, help="JSON-lines file of each output's signals: read for the rows "
                        "it holds (no new scoring), appended with the rows scored now")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = make_parser()
    args = parser.parse_args(argv)
    sets = load(args.data, args.truthfulqa, args.limit)
    for name in sets:
        print(f"{name}: calibration part {sum(r.part == CALIBRATION for r in sets[name])} outputs, "
              f"figures part {sum(r.part == FIGURES for r in sets[name])}")
    fit_on = [name.strip() for name in args.fit_on.split(",")] if args.fit_on else None
    unknown = sorted(set(fit_on or []) - set(sets))
    if unknown:
        parser.error(f"--fit-on: {', '.join(unknown)} not read; name some of those read: {', '.join(sets)}")
    report = evaluate(sets, args.fit, args.judge, signals=args.signals, fit_on=fit_on)
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=_plain), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, Figure):
        return value.as_dict()
    return str(value)


if __name__ == "__main__":
    main()
