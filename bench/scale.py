"""Cost per item as suites grow: run, score, report, gate and the app's Runs page at 1k, 10k and 50k items.

    python bench/scale.py [--sizes 1000,10000,50000] [--threads 1] [--max-new-tokens 4] [--keep DIR]

For each size a generated suite (a YAML file naming a JSON Lines item file: mostly short questions with
references, some that expect "I don't know", some multiple choice, tagged by kind) runs on the tests' tiny
Llama (tests/fixtures/tiny_model.py) in a private ``EVALTUNE_HOME`` with its own SQLite store. A probe run in a
store of its own first learns the model's greedy answers, and most references are made from them, so that scores
vary (right, partly right, wrong) as a real model's do and the statistics do real work. Each step is its
own process (imports included), timed by wall clock, its memory the peak RSS the kernel reports for it
(``wait4``), so a number here is what a user's command costs:

- ``run A``: ``evaltune run`` (generate, store, score with the suite's scorers); ``run B`` the same at
  temperature 0.8, seed 1, so that the two runs differ on many items;
- ``  generation`` and ``  store+score``: ``run A``'s own split of its time (from the run's stats);
- ``score A``: ``evaltune score A`` (score again, no generation);
- ``report A B``: ``evaltune report A B --format html -o FILE`` (its size is printed below the table);
- ``gate A B``: ``evaltune gate A B --gate FILE`` (a minimum and a no-significant-regression rule);
- ``runs page``: what the app's Runs page reads when it opens: the runs table, run A's metrics, the count of its
  outputs and their first page (``feedback_ui.runs_data``).

The table gives seconds, peak MiB and ms per item; ``growth`` is log(t2/t1)/log(n2/n1) against the size
before (1 = linear). The machine is shared: run-to-run noise of 10-30% is usual.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import PROJECT_ROOT, Process, bench_env, run_process

SCORERS = ["exact_match", "token_f1", "rouge_l", "abstention", "choice_accuracy"]
GATE_RULES = "exact_match: {min: 0.0, no_significant_regression: {min_effect: 0.01}}\ntoken_f1: {min: 0.0}\n"
RUNS_PAGE = """
import sys
from evaltune.store import store_session
from evaltune.feedback_ui.runs_data import OutputFilter, count_outputs, outputs_page, run_metrics, runs_table
run_id = int(sys.argv[1])
with store_session() as session:
    rows = runs_table(session, limit=200)
    metrics = run_metrics(session, run_id)
    total = count_outputs(session, run_id, OutputFilter())
    page = outputs_page(session, run_id, OutputFilter(), 0)
print(len(rows), len(metrics), total, len(page))
"""


@dataclass(frozen=True)
class Step:
    """One measured step at one size."""

    name: str
    items: int
    seconds: float
    peak_mib: float

    @property
    def ms_per_item(self) -> float:
        return 1000 * self.seconds / self.items


def write_suite(folder: Path, n: int, max_new_tokens: int, answers: dict[str, str] | None = None) -> Path:
    """A suite of ``n`` items: 90% questions with references, 5% unanswerable, 5% multiple choice.

    ``answers`` (item id -> what the model answered greedily, from a probe run in another store) makes the
    references hit: 6 in 10 questions have the model's own answer as reference (right at temperature 0), 3 its
    first word (partly right), 1 the arithmetic answer (wrong), so scores vary as a real model's do."""
    lines = []
    for i in range(n):
        kind = i % 20
        if kind == 0:
            item = {"id": f"mc{i}", "input": f"Is {i} an even number?", "choices": ["yes", "no"],
                    "gold": [(i // 20) % 2], "tags": ["choice"]}
        elif kind == 1:
            item = {"id": f"fic{i}", "input": f"What is the capital of Zorbania-{i}?", "expect_abstention": True,
                    "tags": ["fictional"]}
        else:
            key = f"q{i}"
            item = {"id": key, "input": f"What is {i} plus {i % 7}?", "references": [_reference(i, key, answers)],
                    "tags": ["arithmetic", "even" if i % 2 == 0 else "odd"]}
        lines.append(json.dumps(item))
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    suite = folder / f"scale{n}.yaml"
    suite.write_text(
        f"name: scale{n}\ndescription: generated for bench/scale.py\n"
        f"generation: {{max_new_tokens: {max_new_tokens}, temperature: 0.0, batch_size: 256, chat: never}}\n"
        f"scorers: [{', '.join(SCORERS)}]\nitems_file: items.jsonl\n", encoding="utf-8")
    return suite


def _reference(i: int, key: str, answers: dict[str, str] | None) -> str:
    answer = " ".join((answers or {}).get(key, "").split())
    if not answer or i % 10 == 9:
        return str(i + i % 7)
    return answer if i % 10 < 6 else answer.split()[0]


def probed_suite(folder: Path, n: int, max_new_tokens: int, model: Path, threads: int) -> Path:
    """The suite of ``n`` items in ``folder``, its references made from a probe run's answers."""
    probe = folder / "probe"
    probe.mkdir()
    answers = probe_answers(write_suite(probe, n, max_new_tokens), model, probe / "home", threads)
    return write_suite(folder, n, max_new_tokens, answers)


def probe_answers(suite: Path, model: Path, home: Path, threads: int) -> dict[str, str]:
    """The model's greedy answer to each item, from a run in a store of its own (so the measured runs find
    nothing in their cache)."""
    env = bench_env(threads, home=home)
    run = _json_tail(run_process(evaltune("run", str(suite), "--model", str(model), "--json"), env).output)
    outputs = run_process(evaltune("runs", "outputs", str(run["run_id"]), "--format", "jsonl"), env).output
    rows = [json.loads(line) for line in outputs.splitlines() if line.startswith("{")]
    return {row["item"]: row["output"] for row in rows}


def tiny_model(folder: Path, threads: int) -> Path:
    """The tests' tiny Llama, built by a child process: a child's peak RSS counts its parent's memory at fork
    time, so this process stays free of torch to keep every step's figure its own."""
    build = ("import sys; from pathlib import Path; from tests.fixtures.tiny_model import build_tiny_model; "
             "print(build_tiny_model(Path(sys.argv[1])))")
    target = folder / "tiny-model"
    target.mkdir(exist_ok=True)
    output = run_process([sys.executable, "-c", build, str(target)], bench_env(threads), cwd=PROJECT_ROOT).output
    return Path(output.strip().splitlines()[-1])


def evaltune(*args: str) -> list[str]:
    return [sys.executable, "-m", "evaltune", *args]


def _json_tail(output: str) -> dict[str, object]:
    """The JSON object ``run --json`` printed last (progress lines may come before it)."""
    start = output.index("\n{") + 1 if not output.startswith("{") else 0
    data = json.loads(output[start:])
    assert isinstance(data, dict)
    return data


def measure_size(n: int, model: Path, scratch: Path, threads: int, max_new_tokens: int) -> tuple[list[Step], int]:
    """Every step at ``n`` items; also the HTML report's size in bytes."""
    scratch.mkdir()
    env = bench_env(threads, home=scratch / "home")
    # In a child: the answers of 50,000 items would raise this process's memory, and a child's peak RSS starts
    # from its parent's resident memory at fork.
    probed = ("import sys; from pathlib import Path; from bench.scale import probed_suite; "
              "print(probed_suite(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), "
              "int(sys.argv[5])))")
    output = run_process([sys.executable, "-c", probed, str(scratch), str(n), str(max_new_tokens), str(model),
                          str(threads)], bench_env(threads)).output
    suite = Path(output.strip().splitlines()[-1])
    steps: list[Step] = []

    def step(name: str, command: list[str]) -> Process:
        process = run_process(command, env)
        steps.append(Step(name, n, process.seconds, process.peak_mib))
        print(f"  {n:>6} {name:<14} {process.seconds:8.1f} s {process.peak_mib:7.0f} MiB", flush=True)
        return process

    run_a = _json_tail(step("run A", evaltune("run", str(suite), "--model", str(model), "--json")).output)
    stats = run_a["stats"]
    assert isinstance(stats, dict)
    peak = steps[-1].peak_mib
    steps += [Step("  generation", n, float(stats["generation_s"]), peak),
              Step("  store+score", n, float(stats["total_s"]) - float(stats["generation_s"]), peak)]
    run_b = _json_tail(step("run B", evaltune("run", str(suite), "--model", str(model), "--json",
                                              "--temperature", "0.8", "--seed", "1")).output)
    a, b = str(run_a["run_id"]), str(run_b["run_id"])
    step("score A", evaltune("score", a, "--scorers", ",".join(SCORERS)))
    html = scratch / "report.html"
    step("report A B", evaltune("report", a, b, "--format", "html", "-o", str(html)))
    gates = scratch / "gates.yaml"
    gates.write_text(GATE_RULES, encoding="utf-8")
    gate_command = evaltune("gate", a, b, "--gate", str(gates))
    gate_command = [sys.executable, "-c", "import subprocess, sys; "
                    "code = subprocess.call(sys.argv[1:]); sys.exit(0 if code in (0, 1) else code)", *gate_command]
    step("gate A B", gate_command)  # exit 1 (a gate failed) is an answer, not an error
    step("runs page", [sys.executable, "-c", RUNS_PAGE, a])
    return steps, html.stat().st_size


def table(steps: list[Step]) -> str:
    """step | items | seconds | peak MiB | ms/item | growth in time against the size before."""
    header = f"{'step':<14} {'items':>7} {'seconds':>9} {'peak MiB':>9} {'ms/item':>9} {'growth':>7}"
    lines = [header, "-" * len(header)]
    names = list(dict.fromkeys(s.name for s in steps))
    for name in names:
        previous: Step | None = None
        for s in sorted((s for s in steps if s.name == name), key=lambda s: s.items):
            growth = ""
            if previous is not None and previous.seconds > 0 and s.seconds > 0:
                growth = f"{math.log(s.seconds / previous.seconds) / math.log(s.items / previous.items):.2f}"
            lines.append(f"{name:<14} {s.items:>7} {s.seconds:>9.2f} {s.peak_mib:>9.0f} {s.ms_per_item:>9.3f} "
                         f"{growth:>7}")
            previous = s
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="Comma-separated suite sizes.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads for every step.")
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="Work in this (new) folder and keep it, stores included.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = tiny_model(work, args.threads)
        steps: list[Step] = []
        html_sizes = {}
        for n in sizes:
            found, html_sizes[n] = measure_size(n, model, work / f"n{n}", args.threads, args.max_new_tokens)
            steps += found
        print()
        print(table(steps))
        print()
        for n, size in html_sizes.items():
            print(f"HTML report of two {n}-item runs: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
