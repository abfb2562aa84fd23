"""A job of several processes: the worker trains it under ``accelerate launch``, in a process group of its own.

The job's folder (``EVALTUNE_HOME/adapters/job-N``) gets what the launch reads: the training rows (``rows.jsonl``),
the job's config (``config.json``) and the accelerate config (``accelerate.yaml``: one of the files shipped in
``accelerate_configs/``, DDP, DeepSpeed ZeRO-2/3 or FSDP, with the process count, a free port and the precision
filled in). Every process runs ``retune.accelerate_entry``, which runs ``retune.train.train`` as a one-process job
does, so checkpoints, resuming and the adapter's place are the same; the main process writes ``history.json``.

While the processes train, the worker's thread keeps heartbeating, the main process's job-log lines are copied
into the job log, and a cancel ends the whole process group. ``engine_problem`` says, before a job is queued and
again before a worker starts it, what this machine lacks for the job (DeepSpeed, bitsandbytes, a GPU).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from evaltune.retune.accelerate_entry import LOG_MARK
from evaltune.retune.config import RetuneConfig
from evaltune.retune.train import TrainResult
from evaltune.textfiles import read_yaml

Log = Callable[[str], None]
CONFIGS = Path(__file__).parent / "accelerate_configs"
STOP_GRACE_S = 10.0  # after SIGTERM, how long the processes get to exit before SIGKILL
OUTPUT_KEPT = 80  # lines of the processes' own output kept for a failure's details


@dataclass(frozen=True)
class EngineProblem:
    """What this machine lacks for a job: the option at fault and the sentence that says the fix."""

    option: str
    message: str


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def engine_problem(config: RetuneConfig) -> EngineProblem | None:
    """Why this machine cannot train ``config`` (a missing package, no CUDA GPU, too few GPUs), or None.

    Asked when the job is queued and again by the worker that claims it, which may be another machine."""
    if config.deepspeed and not _installed("deepspeed"):
        return EngineProblem("--deepspeed", f"--deepspeed {config.deepspeed} needs the deepspeed package, which is "
                                            "not installed: pip install 'evaltune[deepspeed]'")
    if config.qlora and not _installed("bitsandbytes"):
        return EngineProblem("--qlora", "QLoRA needs a CUDA GPU and bitsandbytes, which is not installed: "
                                        "pip install 'evaltune[qlora]'")
    wants_gpu = config.qlora or config.deepspeed or config.dtype == "float16" or config.device.startswith("cuda")
    if not wants_gpu and config.processes == 1:
        return None  # a CPU or an auto job: nothing to look at (and no need to import torch here)
    gpus = _gpus()
    if config.qlora and not gpus:
        return EngineProblem("--qlora", "QLoRA needs a CUDA GPU and bitsandbytes; this machine has no CUDA GPU "
                                        "(queue the job from, or run the worker on, a machine with one)")
    if wants_gpu and not gpus:
        what = (f"--deepspeed {config.deepspeed}" if config.deepspeed else "--dtype float16"
                if config.dtype == "float16" else f"--device {config.device}")
        option = what.split()[0]
        return EngineProblem(option, f"{what} trains on CUDA GPUs and this machine has none; on a CPU train with "
                                     "--device cpu and --dtype float32 (DDP over gloo with --processes)")
    if config.device.startswith("cuda:") and int(config.device.split(":")[1]) >= gpus:
        return EngineProblem("--device", f"--device {config.device}: this machine has {gpus} GPU(s), numbered from 0")
    if config.processes > 1 and config.device != "cpu" and 0 < gpus < config.processes:
        return EngineProblem("--processes", f"--processes {config.processes} takes one GPU each and this machine "
                                            f"has {gpus}: give --processes {gpus} or fewer")
    return None


class LaunchFailed(RuntimeError):
    """The launched training exited with an error; ``output`` holds the processes' last lines."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def accelerate_config(config: RetuneConfig, port: int, mixed_precision: str) -> dict[str, Any]:
    """The shipped accelerate config for the job's engine, with its process count, port and precision filled in."""
    name = f"deepspeed_{config.deepspeed}" if config.deepspeed else "fsdp" if config.fsdp else "ddp"
    # Plain dicts (the reader's mappings remember their lines), so that the filled-in copy dumps as YAML again.
    values = json.loads(json.dumps(read_yaml(CONFIGS / f"{name}.yaml")))
    values.update(num_processes=config.processes, main_process_port=port, mixed_precision=mixed_precision)
    return values


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mixed_precision(config: RetuneConfig) -> str:
    """accelerate's name for the precision ``retune.train`` trains in, so that the launch and the Trainer agree."""
    from evaltune.retune.train import precision

    return {"bfloat16": "bf16", "float16": "fp16"}.get(precision(config), "no")


def _write_inputs(folder: Path, records: Sequence[dict[str, Any]], config: RetuneConfig) -> dict[str, Path]:
    """The files the launched processes read, in the job's folder (kept: they say what the job trained on)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"rows": folder / "rows.jsonl", "config": folder / "config.json", "accelerate": folder / "accelerate.yaml"}
    files["rows"].write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    files["config"].write_text(json.dumps(config.as_json(), indent=1), encoding="utf-8")
    launch = accelerate_config(config, _free_port(), _mixed_precision(config))
    files["accelerate"].write_text(yaml.safe_dump(launch, sort_keys=True), encoding="utf-8")
    (folder / "history.json").unlink(missing_ok=True)  # an earlier attempt's: not this one's result
    return files


def launch_command(base: str, folder: Path, files: dict[str, Path], threads: int) -> list[str]:
    """``accelerate launch`` of the entry point with the job's files, stopping if this process (the worker) dies."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(files["accelerate"]),
            "-m", "evaltune.retune.accelerate_entry", "--base", base, "--data", str(files["rows"]),
            "--config", str(files["config"]), "--output", str(folder), "--threads", str(threads),
            "--stop-with-pid", str(os.getpid())]


def _environment(config: RetuneConfig) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if config.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # DDP over gloo, even on a machine with GPUs
    return env


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _end_group(process: subprocess.Popen[str], log: Log) -> None:
    """SIGTERM to the whole process group (the launcher, its agent, every rank), then SIGKILL to what is left."""
    log(f"stopping the training processes (process group {process.pid})")
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


# An exception's last line in a rank's traceback ("[rank0]: peft.utils.error.SomeError: message"): its class
# without the module path, and its message.
_EXCEPTION = re.compile(r"^(?:\[rank\d+\]:\s*)?(?:[A-Za-z_][\w]*\.)*(\w*(?:Error|Exception)\b:.*)$")
# The launcher's own errors come last and only say that a rank failed.
_LAUNCHER_ERRORS = ("ChildFailedError", "CalledProcessError")


def _failure(code: int, output: Sequence[str]) -> LaunchFailed:
    """The error a failed launch raises: the ranks' last exception line, with the processes' output kept whole."""
    found = [match.group(1).strip() for line in output if (match := _EXCEPTION.match(line.strip()))]
    causes = [line for line in found if not line.startswith(_LAUNCHER_ERRORS)]
    last = causes[-1] if causes else next((line.strip() for line in reversed(output) if line.strip()), "")
    message = f"the training processes exited with code {code}" + (f": {last}" if last else "")
    return LaunchFailed(message, "\n".join(output))


def train_launched(
    base: str, records: Sequence[dict[str, Any]], config: RetuneConfig, output_dir: Path, log: Log = print,
    should_stop: Callable[[], bool] = lambda: False, threads: int = 0,
) -> TrainResult:
    """Train ``config.processes`` processes under ``accelerate launch`` on ``records``; what ``retune.train.train``
    returns. ``should_stop`` is asked twice a second: once true, the process group is ended (``stopped``).
    ``threads``: the torch threads of this machine, shared out between the processes. Raises ``LaunchFailed``."""
    files = _write_inputs(output_dir, records, config)
    per_process = max(1, threads // config.processes) if threads else 0
    command = launch_command(base, output_dir, files, per_process)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               env=_environment(config), start_new_session=True)
    engine = f"DeepSpeed {config.deepspeed}" if config.deepspeed else "FSDP" if config.fsdp else "DDP"
    log(f"launched {config.processes} training processes ({engine}, accelerate launch; process group {process.pid})")
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    output: deque[str] = deque(maxlen=OUTPUT_KEPT)
    stopped = _follow(process, lines, output, log, should_stop)
    code = process.wait()
    if stopped:
        return TrainResult(output_dir / "adapter", None, stopped=True, world_size=config.processes)
    if code != 0:
        raise _failure(code, list(output))
    return _result(output_dir, list(output))


def _follow(process: subprocess.Popen[str], lines: queue.Queue[str | None], output: deque[str], log: Log,
            should_stop: Callable[[], bool]) -> bool:
    """Copy the main process's job-log lines into the job log (keeping the rest of the output for a failure) until
    the output ends; whether the job was stopped on request."""
    while True:
        if should_stop():
            _end_group(process, log)
            return True
        deadline = time.monotonic() + 0.5
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return False
            if line.startswith(LOG_MARK):
                log(line[len(LOG_MARK):])
            else:
                output.append(line)


def _result(output_dir: Path, output: list[str]) -> TrainResult:
    summary_file = output_dir / "history.json"
    if not summary_file.is_file():
        raise LaunchFailed(f"the training processes ended without writing {summary_file}", "\n".join(output))
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    merged = summary.get("merged_dir")
    return TrainResult(output_dir / "adapter", Path(merged) if merged else None, list(summary["history"]),
                       list(summary.get("warnings", [])), world_size=int(summary["world_size"]))
