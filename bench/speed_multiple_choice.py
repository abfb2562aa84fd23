"""Multiple-choice speed, evaltune against lm-evaluation-harness: TruthfulQA MC1 and MC2 by log-likelihood.

    python bench/speed_multiple_choice.py                              # tiny: 817 questions; default: 30
    python bench/speed_multiple_choice.py --models tiny --runs 5
    python bench/speed_multiple_choice.py --models default --default-limit 817   # hours for lm-eval on 2 cores

Both tools score the same 817 questions (../shared/benchdata/truthfulqa/mc_task_v1.json) with the same
prompt (the 6-shot QA primer of lm-eval's truthfulqa tasks; bench/tasks holds lm-eval's YAMLs pointed at
the local file), float32 on the CPU, each as a whole process, ``--runs`` times. The table gives median wall
time, log-likelihood requests per second (one request per answer choice, MC1 and MC2 counted separately,
as lm-eval issues them), peak memory and lm-eval's time over evaltune's; below it, both tools' MC1 and MC2,
which must be equal (to 1e-4; exit 1 otherwise).

On the default model lm-eval runs one full forward pass per answer choice over a ~250-token prompt, about
about 10 minutes per 100 questions here, so that model is limited to ``--default-limit`` questions (30).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import (
    PROJECT_ROOT,
    TRUTHFULQA,
    Process,
    Row,
    bench_env,
    bench_models,
    evaltune_command,
    interleave,
    lm_eval_command,
    peak_line,
    run_process,
    table,
)

TASKS = {"truthfulqa_mc1": "evaltune_truthfulqa_mc1", "truthfulqa_mc2": "evaltune_truthfulqa_mc2"}
TOLERANCE = 1e-4


def request_count(questions: int) -> int:
    """Log-likelihood requests both tools make: one per MC1 choice plus one per MC2 choice."""
    docs = json.loads(TRUTHFULQA.read_text())[:questions]
    return sum(len(doc["mc1_targets"]) + len(doc["mc2_targets"]) for doc in docs)


def evaltune_values(output: str) -> dict[str, float]:
    """MC1 and MC2 from ``evaltune run --json`` (the JSON document is the last thing printed)."""
    summary = json.loads(output[output.index("{"):])
    metrics = {m["name"]: m["value"] for m in summary["metrics"]}
    return {name: float(metrics[name]) for name in TASKS}


def lm_eval_values(output_dir: Path) -> dict[str, float]:
    results = json.loads(next(output_dir.rglob("results_*.json")).read_text())["results"]
    return {name: float(results[task]["acc,none"]) for name, task in TASKS.items()}


def model_rows(model: Path, label: str, questions: int, args: argparse.Namespace,
               scratch: Path) -> tuple[list[Row], list[str], bool]:
    task = f"TruthfulQA MC1+MC2 {questions}q {label}"
    work = request_count(questions)
    suite = f"truthfulqa_mc:{TRUTHFULQA}"
    extra = ["--limit", str(2 * questions)]  # the loader makes an MC1 and an MC2 item per question
    ours = Row(task, f"evaltune b{args.batch_size}", work=work, unit="req/s")
    theirs = Row(task, "lm-eval", work=work, unit="req/s")
    homes = [scratch / f"home-{i}" for i in range(args.runs)]
    outs = [scratch / f"lm-eval-{i}" for i in range(args.runs)]
    tasks = ",".join(TASKS.values())

    def evaltune_once(i: int) -> Process:
        return run_process(evaltune_command(suite, model, args.batch_size, extra), bench_env(args.threads, homes[i]))

    def lm_eval_once(i: int) -> Process:
        return run_process(lm_eval_command(model, PROJECT_ROOT / "bench" / "tasks", tasks, args.batch_size, outs[i],
                                           chat=False, limit=questions), bench_env(args.threads))

    interleave([(ours, evaltune_once), (theirs, lm_eval_once)], args.runs)
    a, b = evaltune_values(ours.runs[-1].output), lm_eval_values(outs[-1])
    same = all(abs(a[k] - b[k]) <= TOLERANCE for k in TASKS)
    notes = [f"{label} {questions}q {k}: evaltune {a[k]:.6f}  lm-eval {b[k]:.6f}  |diff| {abs(a[k] - b[k]):.1e}"
             for k in TASKS]
    return [ours, theirs], notes, same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,default", help="tiny, default or model folders, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=817, help="questions for every model but the default")
    parser.add_argument("--default-limit", type=int, default=30, help="questions for the default model")
    parser.add_argument("--batch-size", type=int, default=32, help="both tools' batch size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(peak_line(args.threads, "start"), flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    all_same = True
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, scratch in bench_models(args.models, Path(tmp)):
            if label == "tiny":  # its tokenizer needs up to 637 tokens per prompt (see bench/parity_lm_eval.py)
                from bench.parity_lm_eval import wide_context_copy

                model = wide_context_copy(model, scratch / "tiny-2048")
            questions = args.default_limit if label == "default" else args.limit
            more_rows, more_notes, same = model_rows(model, label, questions, args, scratch)
            rows, notes, all_same = rows + more_rows, notes + more_notes, all_same and same
    print(peak_line(args.threads, "end"))
    print()
    print(table(rows))
    print("\n".join(notes))
    print("MC1 and MC2 " + ("equal" if all_same else "DIFFER") + f" within {TOLERANCE:g}")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
