"""One process against an ``accelerate launch`` of several, on the same generated suite (CPU, gloo).

    python bench/data_parallel.py                         # tiny model, 200 items, 1 vs 2 processes, 2 runs each
    python bench/data_parallel.py --items 400 --processes 1,2,4 --models default --runs 3

Each measurement is a whole command from an empty store (imports, model load, generation, scoring), one torch
thread per process: ``evaltune run`` for one process, ``accelerate launch --multi_gpu --num_processes N -m evaltune
run`` for N (``--multi_gpu`` is what starts N processes without GPUs). The bench checks that every launch stored
the metrics the single process stored. On a machine with fewer free cores than processes expect no gain: the
processes then share the cores, and each pays for its own imports and model load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import Process, Row, bench_env, bench_models, interleave, peak_line, run_process, table


def write_suite(folder: Path, items: int, max_new_tokens: int) -> Path:
    """``items`` text questions of varied length, decoded greedily."""
    rows = [{"id": f"q{i:05d}", "input": f"Question {i}: " + "what comes next? " * (1 + i % 7),
             "references": [f"answer {i}"]} for i in range(items)]
    path = folder / "data_parallel.yaml"
    path.write_text(yaml.safe_dump({"name": "data-parallel", "scorers": ["exact_match", "token_f1"], "items": rows,
                                    "generation": {"max_new_tokens": max_new_tokens, "temperature": 0.0}}))
    return path


def command(processes: int, suite: Path, model: Path, port: int) -> list[str]:
    run = ["-m", "evaltune", "run", str(suite), "--model", str(model), "--json"]
    if processes == 1:
        return [sys.executable, *run]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), *run]


def stored_metrics(home: Path) -> dict[str, float | None]:
    from sqlalchemy import select

    from evaltune.db.engine import open_store
    from evaltune.db.evaluation import RunMetric

    store = open_store(f"sqlite:///{home / 'evaltune.db'}", upgrade=False)
    try:
        with store.sessions() as session:
            return {name: value for name, value in session.execute(select(RunMetric.name, RunMetric.value))}
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny", help="tiny, default or a model folder (comma-separated)")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts; 1 is the baseline")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    print(peak_line(1, "before"), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="evaltune-dp-bench-") as tmp:
        for label, model, scratch in bench_models(args.models, Path(tmp)):
            suite = write_suite(scratch, args.items, args.max_new_tokens)
            task = f"{label}, {args.items} items"
            metrics: dict[int, list[dict[str, float | None]]] = {n: [] for n in counts}

            def once(run: int, n: int, scratch: Path = scratch, suite: Path = suite, model: Path = model,
                     metrics: dict[int, list[dict[str, float | None]]] = metrics) -> Process:
                home = scratch / f"home-{n}-{run}"  # an empty store: nothing comes from an earlier run's cache
                done = run_process(command(n, suite, model, 29700 + 10 * run + n), bench_env(1, home))
                metrics[n].append(stored_metrics(home))
                return done

            measured = [(Row(task, f"{n} process{'es' if n > 1 else ''}", work=args.items, unit="items/s"),
                         lambda run, n=n: once(run, n)) for n in counts]
            interleave(measured, args.runs)
            rows += [row for row, _ in measured]
            baseline = metrics[counts[0]][0]
            assert all(m == baseline for found in metrics.values() for m in found), "a launch stored other metrics"
    print(peak_line(1, "after"), flush=True)
    print(table(rows, baseline_tool="1 process"))


if __name__ == "__main__":
    main()
