"""What the speed benches share: whole-process timing with peak memory, medians, models, a matmul peak, tables.

Each measured command runs as its own process (imports, model load and all), ``runs`` times, and the row
reports the median wall time and the largest peak RSS. Both tools get the same torch thread count through
``OMP_NUM_THREADS`` (lm-eval sets none of its own) and ``EVALTUNE_THREADS``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = PROJECT_ROOT.parent / "shared" / "benchdata"
TRUTHFULQA = BENCHDATA / "truthfulqa" / "mc_task_v1.json"


@dataclass(frozen=True)
class Process:
    """One finished command: wall seconds, peak resident memory (MiB) and its output."""

    seconds: float
    peak_mib: float
    output: str


@dataclass
class Row:
    """One line of a bench table: a task, a tool, its process timings and how much work they did."""

    task: str
    tool: str
    runs: list[Process] = field(default_factory=list)
    work: float = 0.0  # tokens or requests done by one run
    unit: str = "tok/s"

    @property
    def median_s(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_mib(self) -> float:
        return max(r.peak_mib for r in self.runs)

    @property
    def rate(self) -> float:
        return self.work / self.median_s if self.median_s else 0.0


def bench_env(threads: int, home: Path | None = None) -> dict[str, str]:
    """The environment both tools run in: offline, the same thread count, a private evaltune home."""
    env = dict(os.environ)
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "EVALTUNE_THREADS": str(threads),
            "PYTHONPATH": str(PROJECT_ROOT)}
    if home is not None:
        env["EVALTUNE_HOME"] = str(home)
    return env


def run_process(command: Sequence[str], env: dict[str, str], cwd: Path = PROJECT_ROOT) -> Process:
    """Run ``command`` to the end; its wall time and peak RSS (from wait4, so only this process tree)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{output[-3000:]}")
    return Process(seconds, usage.ru_maxrss / 1024, output)


def repeat(row: Row, runs: int, once: Callable[[int], Process]) -> Row:
    """Fill ``row`` with ``runs`` timings of ``once(i)`` and print each as it finishes."""
    interleave([(row, once)], runs)
    return row


def interleave(rows: Sequence[tuple[Row, Callable[[int], Process]]], runs: int) -> None:
    """Run 1 of every row, then run 2 of every row, ...: the machine's speed drifts (a shared host's measured
    matmul peak moved between 70 and 155 GFLOP/s within an hour here), and alternating spreads the drift
    over both tools instead of handing it to whichever ran second."""
    for i in range(runs):
        for row, once in rows:
            process = once(i)
            row.runs.append(process)
            print(f"  {row.task} / {row.tool} run {i + 1}: {process.seconds:.1f} s, {process.peak_mib:.0f} MiB",
                  flush=True)


def bench_models(names: str, tmp: Path) -> Iterator[tuple[str, Path, Path]]:
    """(label, model folder, scratch folder) for each comma-separated name (see ``bench_model``)."""
    for label in names.split(","):
        scratch = tmp / label.replace("/", "_")
        scratch.mkdir()
        model = bench_model(label, scratch)
        print(f"{label}: {model}", flush=True)
        yield label, model, scratch


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 8) -> float:
    """The best of a few fp32 ``size``x``size`` matmuls on ``threads`` threads, in GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def peak_line(threads: int, when: str) -> str:
    """The machine's fp32 matmul peak now: printed before and after a bench, since it drifts on a shared host."""
    return f"fp32 matmul peak on {threads} threads ({when}): {matmul_peak_gflops(threads):.0f} GFLOP/s"


def bench_model(name: str, scratch: Path) -> Path:
    """``tiny`` (the tests' 2-layer Llama, built here), ``default`` (SmolLM2-135M-Instruct, converted once
    into ``$EVALTUNE_HOME`` as ``make run`` does) or a local model folder."""
    if name == "tiny":
        from tests.fixtures.tiny_model import build_tiny_model

        folder = scratch / "tiny-model"
        folder.mkdir(exist_ok=True)
        return build_tiny_model(folder)
    if name == "default":
        from evaltune import settings
        from evaltune.harness.default_model import default_model_cache, ensure_default_model

        return ensure_default_model(default_model_cache(settings.home()))
    folder = Path(name).expanduser().resolve()
    if not (folder / "config.json").is_file():
        sys.exit(f"--models: {name} is not tiny, default or a transformers model folder")
    return folder


def table(rows: Sequence[Row], baseline_tool: str = "lm-eval") -> str:
    """Rows grouped by task; ``ratio`` is the baseline's median time over this row's (above 1: faster). The
    baseline is the row named ``baseline_tool``, or else the fastest of those named "``baseline_tool`` bN"
    (the baseline tool at batch sizes of its own)."""
    header = (f"{'task':<34} {'tool':<22} {'runs':>4} {'median s':>9} {'rate':>14} {'peak MiB':>9} "
              f"{'speed-up vs ' + baseline_tool:>18}")
    lines = [header, "-" * len(header)]
    for row in rows:
        base = _baseline(rows, row.task, baseline_tool)
        ratio = f"{base.median_s / row.median_s:.2f}x" if base and not _is_tool(row, baseline_tool) else ""
        rate = f"{row.rate:.1f} {row.unit}"
        lines.append(f"{row.task:<34} {row.tool:<22} {len(row.runs):>4} {row.median_s:>9.1f} {rate:>14} "
                     f"{row.peak_mib:>9.0f} {ratio:>18}")
    return "\n".join(lines)


def _is_tool(row: Row, tool: str) -> bool:
    return row.tool == tool or row.tool.startswith(tool + " ")


def _baseline(rows: Sequence[Row], task: str, tool: str) -> Row | None:
    named = [r for r in rows if r.task == task and _is_tool(r, tool)]
    exact = [r for r in named if r.tool == tool]
    return exact[0] if exact else min(named, key=lambda r: r.median_s, default=None)


def lm_eval_command(model: Path, tasks_dir: Path, task: str, batch_size: int | str, output: Path,
                    chat: bool, limit: int | None = None) -> list[str]:
    """``lm_eval --model hf`` on a local task folder, float32 on the CPU, samples logged for checking."""
    command = [sys.executable, "-m", "lm_eval", "--model", "hf",
               "--model_args", f"pretrained={model},dtype=float32", "--device", "cpu",
               "--batch_size", str(batch_size), "--include_path", str(tasks_dir), "--tasks", task,
               "--output_path", str(output), "--log_samples"]
    if chat:
        command.append("--apply_chat_template")
    if limit is not None:
        command += ["--limit", str(limit)]
    return command


def evaltune_command(suite: Path | str, model: Path | str, batch_size: int | None = None,
                     extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "evaltune", "run", str(suite), "--model", str(model), "--json"]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    return command + list(extra)
