"""End to end, evaltune against lm-evaluation-harness: the whole built-in regression suite on one model.

    python bench/speed_end_to_end.py                    # tiny and default models, 3 runs each
    python bench/speed_end_to_end.py --models default --runs 5
    python bench/speed_end_to_end.py --lm-eval-scoring exact_match   # lm-eval scores exact_match alone
    python bench/speed_end_to_end.py --models default --lm-eval-batch-sizes 64   # lm-eval at one batch size

evaltune runs ``evaltune run regression --model M`` as a user does: generation, the suite's 12 scorers
(hallucination, bias and quality, with confidence intervals) and the SQL store, from a fresh store each time.
lm-eval runs the same 186 prompts as a local ``generate_until`` task (the prompts evaltune sends, with the
suite's system prompt through ``--system_instruction`` and the chat template, ``until`` = the suite's stop
string, 48 new tokens, greedy). By default it scores them with the suite's own 12 scorers, plugged in
through its ``process_results`` and ``aggregation`` hooks (``bench/lm_eval_scoring.py``), so both processes
do the same work; ``--lm-eval-scoring exact_match`` has it score its cheapest metric only. Each as a whole
process, ``--runs`` times, alternating; median wall time, outputs per second, peak memory, lm-eval's time
over evaltune's, how many outputs the two tools agree on and, with the same scorers, both tools' metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lm_eval_scoring import METRIC_PREFIX, document, task_yaml, utils_source
from bench.speed_generation import agreement, evaltune_outputs
from bench.speedkit import (
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

TASK = "evaltune_regression"


def write_task(scratch: Path, scoring: str) -> tuple[Path, str]:
    """The regression suite's prompts as an lm-eval task folder; returns (folder, system prompt).
    ``scoring`` "same": the suite's own scorers as lm-eval metrics (``bench/lm_eval_scoring.py``);
    "exact_match": lm-eval's exact_match alone."""
    from evaltune.harness.builtin import builtin_path
    from evaltune.harness.loaders.yaml_suite import read_suite_file
    from evaltune.harness.work import compose_input

    suite = read_suite_file(builtin_path("regression"))
    settings = suite.generation
    docs = scratch / "regression.jsonl"
    docs.write_text("".join(json.dumps(document(item, compose_input(item))) + "\n" for item in suite.items))
    tasks = scratch / "tasks"
    tasks.mkdir()
    generation = {"until": list(settings.stop), "max_gen_toks": settings.max_new_tokens, "do_sample": False}
    scorers = list(suite.scorers) if scoring == "same" else []
    if scorers:
        (tasks / "utils.py").write_text(utils_source(scorers))
        (tasks / f"{TASK}.yaml").write_text(task_yaml(TASK, str(docs), generation, scorers))
    else:
        (tasks / f"{TASK}.yaml").write_text(json.dumps({
            "task": TASK, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(docs)}},
            "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{input}}",
            "doc_to_target": "{{target}}", "generation_kwargs": generation,
            "metric_list": [{"metric": "exact_match"}],
        }))
    return tasks, settings.system_prompt or ""


def lm_eval_outputs_by_id(output_dir: Path, scratch: Path) -> dict[str, str]:
    ids = [json.loads(line)["id"] for line in (scratch / "regression.jsonl").read_text().splitlines()]
    samples = next(output_dir.rglob(f"samples_{TASK}_*.jsonl"))
    return {ids[s["doc_id"]]: s["filtered_resps"][0]
            for s in (json.loads(line) for line in samples.read_text().splitlines())}


def model_rows(model: Path, label: str, args: argparse.Namespace, scratch: Path) -> tuple[list[Row], str]:
    tasks, system = write_task(scratch, args.lm_eval_scoring)
    task = f"regression 186 items {label}"
    ours = Row(task, f"evaltune b{args.batch_size}", work=186, unit="out/s")
    theirs = {size: Row(task, f"lm-eval b{size}", work=186, unit="out/s") for size in args.lm_eval_batch_sizes}
    homes = [scratch / f"home-{i}" for i in range(args.runs)]
    outs = {size: [scratch / f"lm-eval-b{size}-{i}" for i in range(args.runs)] for size in theirs}

    def evaltune_once(i: int) -> Process:
        return run_process(evaltune_command("regression", model, args.batch_size), bench_env(args.threads, homes[i]))

    def lm_eval_at(size: int) -> Callable[[int], Process]:
        def once(i: int) -> Process:
            command = lm_eval_command(model, tasks, TASK, size, outs[size][i], chat=True)
            return run_process([*command, "--system_instruction", system], bench_env(args.threads))
        return once

    interleave([(ours, evaltune_once), *((row, lm_eval_at(size)) for size, row in theirs.items())], args.runs)
    checks = []
    for size in theirs:
        same_outputs = agreement(evaltune_outputs(homes[-1]), lm_eval_outputs_by_id(outs[size][-1], scratch))
        check = f"{label}, lm-eval batch {size}: {same_outputs}"
        if args.lm_eval_scoring == "same":
            check += "\n" + metric_agreement(evaltune_metrics(homes[-1]), lm_eval_metrics(outs[size][-1]))
        checks.append(check)
    return [ours, *theirs.values()], "\n".join(checks)


def evaltune_metrics(home: Path) -> dict[str, float]:
    """Scorer -> its first stored aggregate, for the (only) run in ``home``'s store."""
    import sqlite3

    with sqlite3.connect(home / "evaltune.db") as db:
        rows = db.execute("SELECT scorer, value FROM run_metrics ORDER BY id DESC").fetchall()
    return dict(rows)  # ascending ids win: the first aggregate each scorer stored


def lm_eval_metrics(output_dir: Path) -> dict[str, float]:
    results = json.loads(next(output_dir.rglob("results_*.json")).read_text())["results"][TASK]
    return {key.split(",")[0].removeprefix(METRIC_PREFIX): value for key, value in results.items()
            if key.startswith(METRIC_PREFIX) and "stderr" not in key}


def metric_agreement(ours: dict[str, float], theirs: dict[str, float]) -> str:
    """One line per scorer: both tools' values; the scoring code is the same, so they differ only where the
    outputs do."""
    lines = ["metric (evaltune / lm-eval with the suite's scorers):"]
    for name in sorted(theirs):
        mine = ours.get(name, float("nan"))
        lines.append(f"  {name:<24} {mine:.6f} / {theirs[name]:.6f}  diff {abs(mine - theirs[name]):.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,default", help="tiny, default or model folders, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256,
                        help="evaltune's batch size")
    parser.add_argument("--lm-eval-batch-sizes", default="64,256",
                        help="lm-eval batch sizes to time, comma-separated; the speed-up is against the fastest")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lm-eval-scoring", choices=["same", "exact_match"], default="same",
                        help="lm-eval scores with the suite's own scorers (the same work), or exact_match alone")
    args = parser.parse_args(argv)
    args.lm_eval_batch_sizes = [int(size) for size in args.lm_eval_batch_sizes.split(",")]
    print(peak_line(args.threads, "start"), flush=True)
    rows: list[Row] = []
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, scratch in bench_models(args.models, Path(tmp)):
            more, check = model_rows(model, label, args, scratch)
            rows, checks = rows + more, [*checks, check]
    print(peak_line(args.threads, "end"))
    print()
    print(table(rows))
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
