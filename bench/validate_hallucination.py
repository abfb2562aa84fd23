"""Validate the grounded hallucination scorers against tests/data/hallucination_labelled.jsonl.

    python bench/validate_hallucination.py            # the validation table and the speed of each scorer
    python bench/validate_hallucination.py --fit      # also re-derive the calibrated constants
    python bench/validate_hallucination.py --json out.json

The labelled set: 36 source passages written for this project, four outputs each (two faithful:
paraphrase / restatement / partial; two hallucinated: entity_swap / number_change / date_change /
negation / invented_detail), 144 rows. Passages with odd numbers form the "calibrate" half, on
which ``--fit`` chooses the constants of metrics/scorers/hallucination.py; the "test" half is held out.

How the constants are chosen (``--fit``), on the calibrate half only:
- SUPPORT_THRESHOLD: the cut on an output's lowest sentence similarity that maximises balanced
  accuracy of "some sentence below the cut" against the labels (midpoints between observed values).
- COMBINATION_BIAS / COMBINATION_WEIGHTS: an L2-regularised (lambda = 1) logistic regression of the
  label on the three signals, rounded to one decimal.
- DECISION_THRESHOLD: the cut on the combined score (0.05 steps) with the best balanced accuracy,
  ties broken towards 0.5.

``nli_contradiction`` and ``judge`` are validated too when EVALTUNE_NLI_MODEL / EVALTUNE_JUDGE_MODEL name
a model. ``self_consistency`` is only timed (each output's samples: the faithful outputs of its passage):
the set has no real samples of a model, and the outputs written for a passage cover different facts
on purpose, so agreement with them says nothing about the labels.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaltune.metrics.model_loaders.embeddings import clear_cache  # noqa: E402
from evaltune.metrics.records import Example, ScoreResult  # noqa: E402
from evaltune.metrics.registry import get_scorer  # noqa: E402
from evaltune.metrics.scorers import hallucination  # noqa: E402

DATA = ROOT / "tests" / "data" / "hallucination_labelled.jsonl"
HALLUCINATED_KINDS = ("entity_swap", "number_change", "date_change", "negation", "invented_detail")
FAITHFUL_KINDS = ("paraphrase", "restatement", "partial")
SIGNAL_NAMES = tuple(hallucination.COMBINATION_WEIGHTS)


def load_rows(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def to_examples(rows: Sequence[dict[str, Any]]) -> list[Example]:
    faithful: dict[str, list[str]] = {}
    for row in rows:
        if not row["label"]:
            faithful.setdefault(row["passage"], []).append(row["output"])
    return [
        Example(item_id=row["id"], prompt=row["question"], output=row["output"], context=row["passage"],
                samples=tuple(o for o in faithful.get(row["passage"], []) if o != row["output"]))
        for row in rows
    ]


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve: P(a hallucinated output scores above a faithful one), ties counting half."""
    y, s = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    positives, negatives = s[y], s[~y]
    if not len(positives) or not len(negatives):
        return float("nan")
    above = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return float(above / (len(positives) * len(negatives)))


def balanced_accuracy(labels: Sequence[int], flags: Sequence[bool]) -> float:
    """Mean of the hit rate on hallucinated outputs and the pass rate on faithful ones."""
    y, f = np.asarray(labels, dtype=bool), np.asarray(flags, dtype=bool)
    return float(((f[y]).mean() + (~f[~y]).mean()) / 2)


def timed(name: str, examples: list[Example]) -> tuple[list[ScoreResult], float, float]:
    """(results, seconds to warm up incl. model load, outputs per second once warm)."""
    spec = get_scorer(name)
    start = time.perf_counter()
    spec.score_batch(examples[:2])
    warm_up = time.perf_counter() - start
    clear_cache()  # each scorer pays for its own embeddings
    start = time.perf_counter()
    results = spec.score_batch(examples)
    return results, warm_up, len(examples) / (time.perf_counter() - start)


Signals = dict[str, tuple[list[float], list[bool]]]


def signals(examples: list[Example]) -> tuple[Signals, dict[str, Any], list[ScoreResult]]:
    """Each signal's (scores, flags) per row (higher score = more likely hallucinated), the scorers' speeds,
    and the grounded_hallucination results."""
    speed: dict[str, Any] = {}
    out: Signals = {}
    ran = {}
    for name in ("unsupported_entities", "context_support", "grounded_hallucination", "self_consistency",
                 "nli_contradiction", "judge"):
        results, warm_up, rate = timed(name, examples)
        ran[name] = results
        speed[name] = {"outputs_per_s": round(rate, 1), "first_call_s": round(warm_up, 2)}
    grounded = ran["grounded_hallucination"]
    out["grounded_hallucination"] = ([float(r.value or 0) for r in grounded],
                                     [r.details["hallucinated"] for r in grounded])
    ent = [float(r.value or 0) for r in ran["unsupported_entities"]]
    out["unsupported_entities"] = (ent, [v > 0 for v in ent])
    dissimilarity = [r.details["signals"]["dissimilarity"] for r in grounded]
    out["context_support"] = (dissimilarity, [float(r.value or 0) < 1.0 for r in ran["context_support"]])
    flips = [r.details["signals"]["negation_flip"] for r in grounded]
    out["negation_flip"] = (flips, [v > 0 for v in flips])
    for name in ("nli_contradiction", "judge"):
        if all(r.details.get("skipped") for r in ran[name]):
            speed[name] = {"skipped": ran[name][0].details["reason"]}
        else:
            values = [float(r.value or 0) for r in ran[name]]
            out[name] = (values, [v >= 0.5 for v in values])
    return out, speed, grounded


def table(rows: list[dict[str, Any]], found: Signals) -> list[dict[str, Any]]:
    """One line per signal: balanced accuracy and AUROC per split, detection rate and AUROC per kind."""
    lines = []
    labels = [r["label"] for r in rows]
    faithful = [i for i, r in enumerate(rows) if not r["label"]]
    for name, (scores, flags) in found.items():
        line: dict[str, Any] = {"signal": name}
        for split in ("calibrate", "test", "all"):
            picked = [i for i, r in enumerate(rows) if split in ("all", r["split"])]
            line[f"bacc_{split}"] = balanced_accuracy([labels[i] for i in picked], [flags[i] for i in picked])
            line[f"auroc_{split}"] = auroc([labels[i] for i in picked], [scores[i] for i in picked])
        for kind in (*HALLUCINATED_KINDS, *FAITHFUL_KINDS):
            members = [i for i, r in enumerate(rows) if r["kind"] == kind]
            line[f"flagged_{kind}"] = float(np.mean([flags[i] for i in members]))
            if kind in HALLUCINATED_KINDS:  # this kind against every faithful output
                picked = members + faithful
                line[f"auroc_{kind}"] = auroc([labels[i] for i in picked], [scores[i] for i in picked])
        lines.append(line)
    return lines


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """[bias, weights...] of an L2-regularised logistic regression (bias unpenalised), by Newton steps."""
    x = np.column_stack([np.ones(len(features)), features])
    w = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - labels) + penalty @ w
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def best_cut(values: Sequence[float], labels: Sequence[int], candidates: Sequence[float],
             flag: Callable[[float, float], bool], prefer: float) -> float:
    """The candidate cut with the highest balanced accuracy (ties: the one closest to ``prefer``)."""
    scored = [(balanced_accuracy(labels, [flag(v, c) for v in values]), -abs(c - prefer), c) for c in candidates]
    return max(scored)[2]


def fit(rows: list[dict[str, Any]], grounded: list[ScoreResult]) -> dict[str, Any]:
    """The calibrated constants of metrics/scorers/hallucination.py, re-derived on the calibrate half."""
    cal = [i for i, r in enumerate(rows) if r["split"] == "calibrate"]
    labels = np.array([rows[i]["label"] for i in cal])
    features = np.array([[grounded[i].details["signals"][n] for n in SIGNAL_NAMES] for i in cal])
    weights = np.round(fit_logistic(features, labels), 1)
    min_sim = sorted({round(1.0 - f[SIGNAL_NAMES.index("dissimilarity")], 4) for f in features})
    midpoints = [round((a + b) / 2, 3) for a, b in itertools.pairwise(min_sim)]
    support = best_cut([1.0 - f[1] for f in features], list(labels), midpoints, lambda v, c: v < c, 0.75)
    z = weights[0] + features @ weights[1:]
    combined = 1.0 / (1.0 + np.exp(-z))
    grid = [round(0.05 * k, 2) for k in range(1, 20)]
    decision = best_cut(list(combined), list(labels), grid, lambda v, c: v >= c, 0.5)
    return {"SUPPORT_THRESHOLD": support, "COMBINATION_BIAS": float(weights[0]),
            "COMBINATION_WEIGHTS": dict(zip(SIGNAL_NAMES, map(float, weights[1:]), strict=True)),
            "DECISION_THRESHOLD": decision}


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores every row with every scorer; returns the table, the speeds and the re-fitted constants."""
    examples = to_examples(rows)
    found, speed, grounded = signals(examples)
    return {"table": table(rows, found), "speed": speed, "fit": fit(rows, grounded), "n": len(rows)}


def _print(report: dict[str, Any], show_fit: bool) -> None:
    print(f"{report['n']} labelled outputs; balanced accuracy (bacc) at the documented thresholds, AUROC of the score")
    print(f"{'signal':<26}" + "".join(f"{h:>10}" for h in ("bacc cal", "bacc test", "bacc all", "AUROC cal",
                                                             "AUROC test", "AUROC all")))
    for line in report["table"]:
        cells = [line[f"{m}_{s}"] for m in ("bacc", "auroc") for s in ("calibrate", "test", "all")]
        print(f"{line['signal']:<26}" + "".join(f"{c:>10.3f}" for c in cells))
    print("\nper kind: share flagged (hallucinated kinds: AUROC against all faithful outputs in brackets)")
    print(f"{'signal':<26}" + "".join(f"{k[:15]:>16}" for k in (*HALLUCINATED_KINDS, *FAITHFUL_KINDS)))
    for line in report["table"]:
        cells = [f"{line[f'flagged_{k}']:.2f} ({line[f'auroc_{k}']:.2f})" for k in HALLUCINATED_KINDS]
        cells += [f"{line[f'flagged_{k}']:.2f}" for k in FAITHFUL_KINDS]
        print(f"{line['signal']:<26}" + "".join(f"{c:>16}" for c in cells))
    print("\nspeed (one process, warm; first call includes loading the models)")
    for name, s in report["speed"].items():
        if "skipped" in s:
            print(f"  {name:<24} {s['skipped']}")
        else:
            print(f"  {name:<24} {s['outputs_per_s']:>8.1f} outputs/s   first call {s['first_call_s']:.1f} s")
    if show_fit:
        print("\nconstants re-fitted on the calibrate half:", json.dumps(report["fit"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the constants re-derived on the calibrate half")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    report = evaluate(load_rows())
    _print(report, args.fit)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
