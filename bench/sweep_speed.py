"""A sweep against the same runs made one by one: 2 prompt variants x 2 models of the regression suite's items.

    python bench/sweep_speed.py                      # tiny + default (when its converted cache is there), 2 runs
    python bench/sweep_speed.py --limit 40 --runs 3
    EVALTUNE_MODEL_CACHE=/tmp/mkhome/models python bench/sweep_speed.py

"sweep" is one process, ``evaltune run sweep.yaml --model A --model B``: each model loaded once, then its two
variants. "one by one" is four processes, ``evaltune run VARIANT.yaml --model M`` for each variant written as a
suite file of its own (``template``/``context_template`` and ``system_prompt``, the way suites were written before
``prompts:``), each paying for its imports and its model load; its time is the four processes' sum. Every
measurement starts from an empty store, so nothing is served from an earlier one's cache. The models are the
tests' tiny model and the default model (SmolLM2-135M-Instruct) when its converted folder is in the model cache
(``$EVALTUNE_MODEL_CACHE`` or ``$EVALTUNE_HOME/models``); else a second tiny model of another vocabulary size.
Both ways store the same runs: the bench checks that each cell's metrics equal those of its one-by-one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import Process, Row, bench_env, interleave, peak_line, run_process, table

SCORERS = ["exact_match", "answer_match", "token_f1", "abstention"]
SYSTEM = {"concise": "Answer briefly, in a few words. If you are not sure, answer \"I don't know\".",
          "grounded": "Use only the passage when there is one. If it does not say, answer \"I don't know\"."}


def write_suites(scratch: Path, limit: int | None) -> tuple[Path, dict[str, Path]]:
    """The sweep's suite file (``prompts:`` with two variants) and each variant as a suite file of its own."""
    from evaltune.harness.builtin import builtin_path

    items = builtin_path("regression").parent / "regression.jsonl"
    lines = items.read_text(encoding="utf-8").splitlines()[:limit]
    (scratch / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    base: dict[str, Any] = {"name": "sweep-bench", "items_file": "items.jsonl", "scorers": SCORERS,
                            "generation": {"max_new_tokens": 48, "stop": ["\n\n"], "batch_size": 64}}
    sweep = {**base, "prompts": {
        "concise": {"system": SYSTEM["concise"], "template": "{{ input }}"},
        "grounded": {"system": SYSTEM["grounded"], "template": "{% if context is defined %}Passage: {{ context }}"
                                                               "\n\n{% endif %}Question: {{ input }}"},
    }}
    one_by_one = {
        "concise": {**base, "template": "{input}",
                    "generation": {**base["generation"], "system_prompt": SYSTEM["concise"]}},
        "grounded": {**base, "template": "Question: {input}", "context_template": "Passage: {context}\n\nQuestion: "
                     "{input}", "generation": {**base["generation"], "system_prompt": SYSTEM["grounded"]}},
    }
    sweep_file = scratch / "sweep.yaml"
    sweep_file.write_text(json.dumps(sweep, indent=1), encoding="utf-8")  # JSON is YAML
    files = {}
    for name, suite in one_by_one.items():
        files[name] = scratch / f"{name}.yaml"
        files[name].write_text(json.dumps(suite, indent=1), encoding="utf-8")
    return sweep_file, files


def bench_models(scratch: Path) -> list[tuple[str, Path]]:
    """(label, folder): the tiny model, and the default model when converted, else a second tiny model."""
    from evaltune import settings
    from evaltune.harness.default_model import default_model_cache, default_model_dir, is_converted
    from tests.fixtures.tiny_model import build_tiny_model

    tiny = build_tiny_model(scratch / "tiny")
    default = default_model_dir(default_model_cache(settings.home()))
    if is_converted(default):
        return [("tiny", tiny), ("default", default)]
    print(f"no converted default model at {default}: using a second tiny model (set EVALTUNE_MODEL_CACHE)",
          flush=True)
    return [("tiny", tiny), ("tiny-b", build_tiny_model(scratch / "tiny-b", vocab_size=1536))]


def sweep_once(sweep_file: Path, models: list[tuple[str, Path]], threads: int, scratch: Path, i: int) -> Process:
    command = [sys.executable, "-m", "evaltune", "run", str(sweep_file), "--json"]
    for _, folder in models:
        command += ["--model", str(folder)]
    return run_process(command, _env(threads, scratch / f"sweep-{i}.db"))


def one_by_one_once(files: dict[str, Path], models: list[tuple[str, Path]], threads: int, scratch: Path,
                    i: int) -> Process:
    """The four runs as four processes into one fresh store; a Process whose seconds are their sum."""
    env = _env(threads, scratch / f"apart-{i}.db")
    done = [run_process([sys.executable, "-m", "evaltune", "run", str(path), "--model", str(folder), "--json"], env)
            for _, folder in models for path in files.values()]
    return Process(sum(p.seconds for p in done), max(p.peak_mib for p in done),
                   "\n".join(p.output for p in done))


def _env(threads: int, store: Path) -> dict[str, str]:
    return bench_env(threads) | {"EVALTUNE_DB_URL": f"sqlite:///{store}"}


def same_metrics(scratch: Path, runs: int) -> str:
    """Whether every store holds the same metrics for each (suite version, model): the sweep's cells and the
    one-by-one runs are the same runs."""
    from sqlalchemy import create_engine, text

    found: list[dict[tuple[str, str], list[tuple[str, float]]]] = []
    for name in [f"{kind}-{i}.db" for kind in ("sweep", "apart") for i in range(runs)]:
        engine = create_engine(f"sqlite:///{scratch / name}")
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT s.content_hash, mv.location, m.name, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id "
                "JOIN suites s ON s.id = r.suite_id JOIN model_versions mv ON mv.id = r.model_version_id "
                "WHERE s.name = 'sweep-bench'")).all()
        engine.dispose()
        metrics: dict[tuple[str, str], list[tuple[str, float]]] = {}
        for content_hash, location, metric, value in rows:
            metrics.setdefault((content_hash, location), []).append((metric, round(value, 9)))
        found.append({key: sorted(values) for key, values in metrics.items()})
    same = all(store == found[0] for store in found) and len(found[0]) == 4
    return f"the same metrics in every store, cell by cell ({len(found[0])} runs each): {'yes' if same else 'NO'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="measurements of each way (alternating)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N of the 186 items")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        sweep_file, files = write_suites(scratch, args.limit)
        models = bench_models(scratch)
        items = len((scratch / "items.jsonl").read_text(encoding="utf-8").splitlines())
        outputs = items * len(files) * len(models)
        task = f"{len(files)} variants x {' + '.join(label for label, _ in models)}, {items} items"
        print(peak_line(args.threads, "before"), flush=True)
        sweep, apart = Row(task, "sweep", work=outputs, unit="outputs/s"), Row(task, "one by one", work=outputs,
                                                                              unit="outputs/s")
        interleave([(sweep, lambda i: sweep_once(sweep_file, models, args.threads, scratch, i)),
                    (apart, lambda i: one_by_one_once(files, models, args.threads, scratch, i))], args.runs)
        print(peak_line(args.threads, "after"), flush=True)
        print()
        print(table([apart, sweep], baseline_tool="one by one"))
        print(same_metrics(scratch, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
