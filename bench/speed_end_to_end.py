"""End to end, evaltune against lm-evaluation-harness: the whole built-in regression suite on one model.

    python bench/speed_end_to_end.py                    # tiny and default models, 3 runs each
    python bench/speed_end_to_end.py --models default --runs 5

evaltune runs ``evaltune run regression --model M`` as a user does: generation, the suite's 12 scorers
(hallucination, bias and quality, with confidence intervals) and the SQL store, from a fresh store each time.
lm-eval runs the same 186 prompts as a local ``generate_until`` task (the prompts evaltune sends, with the
suite's system prompt through ``--system_instruction`` and the chat template, ``until`` = the suite's stop
string, 48 new tokens, greedy) and scores ``exact_match``, its cheapest metric; so lm-eval's process does
less work than evaltune's. Each as a whole process, ``--runs`` times; median wall time, outputs per second,
peak memory, lm-eval's time over evaltune's, and how many outputs the two tools agree on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def write_task(scratch: Path) -> tuple[Path, str]:
    """The regression suite's prompts as an lm-eval task folder; returns (folder, system prompt)."""
    from harness.builtin import builtin_path
    from harness.loaders.yaml_suite import load_suite
    from harness.work import compose_input

    suite = load_suite(builtin_path("regression"))
    settings = suite.generation
    docs = scratch / "regression.jsonl"
    docs.write_text("".join(
        json.dumps({"id": item.id, "input": compose_input(item), "target": (item.references or [""])[0]}) + "\n"
        for item in suite.items))
    tasks = scratch / "tasks"
    tasks.mkdir()
    (tasks / f"{TASK}.yaml").write_text(json.dumps({
        "task": TASK, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(docs)}},
        "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{input}}",
        "doc_to_target": "{{target}}",
        "generation_kwargs": {"until": list(settings.stop), "max_gen_toks": settings.max_new_tokens,
                              "do_sample": False},
        "metric_list": [{"metric": "exact_match"}],
    }))
    return tasks, settings.system_prompt or ""


def lm_eval_outputs_by_id(output_dir: Path, scratch: Path) -> dict[str, str]:
    ids = [json.loads(line)["id"] for line in (scratch / "regression.jsonl").read_text().splitlines()]
    samples = next(output_dir.rglob(f"samples_{TASK}_*.jsonl"))
    return {ids[s["doc_id"]]: s["filtered_resps"][0]
            for s in (json.loads(line) for line in samples.read_text().splitlines())}


def model_rows(model: Path, label: str, args: argparse.Namespace, scratch: Path) -> tuple[list[Row], str]:
    tasks, system = write_task(scratch)
    task = f"regression suite 186 items {label}"
    ours = Row(task, f"evaltune b{args.batch_size}", work=186, unit="out/s")
    theirs = Row(task, "lm-eval", work=186, unit="out/s")
    homes = [scratch / f"home-{i}" for i in range(args.runs)]
    outs = [scratch / f"lm-eval-{i}" for i in range(args.runs)]

    def evaltune_once(i: int) -> Process:
        return run_process(evaltune_command("regression", model, args.batch_size), bench_env(args.threads, homes[i]))

    def lm_eval_once(i: int) -> Process:
        command = lm_eval_command(model, tasks, TASK, args.batch_size, outs[i], chat=True)
        return run_process([*command, "--system_instruction", system], bench_env(args.threads))

    interleave([(ours, evaltune_once), (theirs, lm_eval_once)], args.runs)
    check = f"{label}: {agreement(evaltune_outputs(homes[-1]), lm_eval_outputs_by_id(outs[-1], scratch))}"
    return [ours, theirs], check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,default", help="tiny, default or model folders, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="both tools' batch size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
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
