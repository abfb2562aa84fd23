"""Generation speed, evaltune against lm-evaluation-harness: 200 prompts x 64 new tokens, greedy.

    python bench/speed_generation.py                          # tiny and default models, 3 runs each
    python bench/speed_generation.py --models tiny --runs 5
    python bench/speed_generation.py --models default --batch-size 16 --lm-eval-batch-sizes 1,16

The prompts are the first 200 TruthfulQA questions (../shared/benchdata), sent through each model's chat
template by both tools (evaltune ``chat: auto``, lm-eval ``--apply_chat_template``), float32 on the CPU,
stopping only at the model's end-of-sequence token or after 64 tokens. Each tool runs as a whole process
(import, model load, generation, and evaltune's store), ``--runs`` times; the table gives the median wall
time, generated tokens per second of that median, peak memory and lm-eval's time over evaltune's.
The outputs of both tools are compared text for text.

After the process rows, in this process: evaltune's backend against a bare ``model.generate`` loop over the
same batches (the runner's overhead, or saving), and the FLOP/s that generation reached against an fp32
matmul measured here just before.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import (
    TRUTHFULQA,
    Process,
    Row,
    bench_env,
    bench_models,
    evaltune_command,
    interleave,
    lm_eval_command,
    matmul_peak_gflops,
    peak_line,
    run_process,
    table,
)

TASK = "evaltune_speed_generation"


def write_inputs(scratch: Path, prompts: int, new_tokens: int, batch_size: int) -> tuple[Path, Path]:
    """The same prompts as an evaltune suite and as an lm-eval task folder; returns (suite, tasks_dir)."""
    questions = [doc["question"] for doc in json.loads(TRUTHFULQA.read_text())][:prompts]
    items = scratch / "prompts.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i:03d}", "input": q}) + "\n" for i, q in enumerate(questions)))
    suite = scratch / "speed_generation.yaml"
    suite.write_text(json.dumps({
        "name": "speed-generation", "items_file": str(items), "scorers": ["length"],
        "generation": {"max_new_tokens": new_tokens, "temperature": 0.0, "chat": "auto", "batch_size": batch_size},
    }))
    tasks = scratch / "tasks"
    tasks.mkdir()
    (tasks / f"{TASK}.yaml").write_text(json.dumps({
        "task": TASK, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(items)}},
        "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{input}}", "doc_to_target": "",
        "generation_kwargs": {"until": [], "max_gen_toks": new_tokens, "do_sample": False},
        "metric_list": [{"metric": "exact_match"}],
    }))
    return suite, tasks


def evaltune_outputs(home: Path) -> dict[str, str]:
    """Item id -> output of the (only) run stored in ``home``'s SQLite store."""
    import sqlite3

    with sqlite3.connect(home / "evaltune.db") as db:
        rows = db.execute("SELECT i.key, g.output FROM generations g JOIN suite_items i ON i.id = g.item_id")
        return dict(rows.fetchall())


def evaltune_tokens(home: Path) -> int:
    import sqlite3

    with sqlite3.connect(home / "evaltune.db") as db:
        return int(db.execute("SELECT SUM(completion_tokens) FROM generations").fetchone()[0])


def lm_eval_outputs(output_dir: Path) -> dict[str, str]:
    samples = next(output_dir.rglob(f"samples_{TASK}_*.jsonl"))
    outputs = {}
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        outputs[f"q{sample['doc_id']:03d}"] = sample["filtered_resps"][0]
    return outputs


def agreement(ours: dict[str, str], theirs: dict[str, str]) -> str:
    same = sum(ours[k] == theirs.get(k) for k in ours)
    stripped = sum(ours[k].strip() == (theirs.get(k) or "").strip() for k in ours)
    return f"outputs identical: {same}/{len(ours)} (after strip: {stripped}/{len(ours)})"


def process_rows(model: Path, label: str, args: argparse.Namespace, scratch: Path) -> tuple[list[Row], str]:
    suite, tasks = write_inputs(scratch, args.prompts, args.new_tokens, args.batch_size)
    task = f"generation {args.prompts}x{args.new_tokens} {label}"
    ours = Row(task, f"evaltune b{args.batch_size}")
    homes = [scratch / f"home-{i}" for i in range(args.runs)]

    def evaltune_once(i: int) -> Process:
        return run_process(evaltune_command(suite, model), bench_env(args.threads, homes[i]))

    theirs = {size: Row(task, f"lm-eval b{size}") for size in args.lm_eval_batch_sizes}
    outs = {size: [scratch / f"lm-eval-b{size}-{i}" for i in range(args.runs)] for size in theirs}

    def lm_eval_at(size: int) -> Callable[[int], Process]:
        return lambda i: run_process(lm_eval_command(model, tasks, TASK, size, outs[size][i], chat=True),
                                     bench_env(args.threads))

    interleave([(ours, evaltune_once), *((row, lm_eval_at(size)) for size, row in theirs.items())], args.runs)
    ours.work = evaltune_tokens(homes[-1])
    checks = []
    for size, row in theirs.items():
        row.work = ours.work
        checks.append(f"{label}, lm-eval batch {size}: "
                      f"{agreement(evaltune_outputs(homes[-1]), lm_eval_outputs(outs[size][-1]))}")
    return [ours, *theirs.values()], "\n".join(checks)


def in_process(model: Path, args: argparse.Namespace) -> str:
    """Our backend vs a bare generate() loop on the same batches, and FLOP/s against the matmul peak."""
    import torch

    from evaltune.harness.backends.base import GenerationRequest
    from evaltune.harness.backends.hf import HFBackend, HFConfig
    from evaltune.harness.suite import GenerationSettings

    peak = matmul_peak_gflops(args.threads)
    backend = HFBackend(HFConfig(str(model), threads=args.threads, max_batch_size=args.batch_size))
    settings = GenerationSettings(max_new_tokens=args.new_tokens, chat="auto", batch_size=args.batch_size)
    questions = [doc["question"] for doc in json.loads(TRUTHFULQA.read_text())][: args.prompts]
    requests = [GenerationRequest(backend.render(q, settings), settings) for q in questions]
    started = time.perf_counter()
    completions = backend.generate(requests)
    ours_s = time.perf_counter() - started
    bare_s, slots = _bare_generate(backend, [str(r.prompt) for r in requests], args)
    prompt_tokens = sum(c.prompt_tokens for c in completions)
    generated = sum(c.completion_tokens for c in completions)
    flops = _forward_flops(backend.model, prompt_tokens + generated)
    del torch  # imported for its side effect on threads only
    return (f"  evaltune backend {ours_s:.1f} s vs bare model.generate on the same batches {bare_s:.1f} s: "
            f"ours/bare = {ours_s / bare_s:.3f} ({generated} generated tokens; generate() computed {slots} "
            f"token slots, finished rows included)\n"
            f"  achieved {flops / ours_s / 1e9:.1f} GFLOP/s (2 x matmul parameters x {prompt_tokens + generated} "
            f"tokens) against a measured fp32 matmul peak of {peak:.1f} GFLOP/s on {args.threads} threads: "
            f"{100 * flops / ours_s / 1e9 / peak:.0f}% of peak")


def _bare_generate(backend: Any, prompts: list[str], args: argparse.Namespace) -> tuple[float, int]:
    """generate() over the batches our backend forms (longest prompts first), greedy, EOS only."""
    import torch

    tokenizer, model = backend.tokenizer, backend.model
    encoded = sorted((tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts), key=lambda t: -len(t))
    slots, started = 0, time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(encoded), args.batch_size):
            batch = tokenizer.pad({"input_ids": encoded[start : start + args.batch_size]}, return_tensors="pt")
            out = model.generate(**batch, max_new_tokens=args.new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            slots += out[:, batch["input_ids"].shape[1] :].numel()
    return time.perf_counter() - started, slots


def _forward_flops(model: Any, tokens: int) -> float:
    """2 x (parameters of every matmul, the output head included) x tokens; attention scores left out."""
    import torch

    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * matmul * tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,default", help="tiny, default or model folders, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256, help="evaltune's batch size")
    parser.add_argument("--lm-eval-batch-sizes", default="64,256",
                        help="lm-eval batch sizes to time, comma-separated; the speed-up is against the fastest")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(peak_line(args.threads, "start"), flush=True)
    args.lm_eval_batch_sizes = [int(size) for size in args.lm_eval_batch_sizes.split(",")]
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, scratch in bench_models(args.models, Path(tmp)):
            model_rows, check = process_rows(model, label, args, scratch)
            rows += model_rows
            notes += [check, f"{label}:", in_process(model, args)]
    print(peak_line(args.threads, "end"))
    print()
    print(table(rows))
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
