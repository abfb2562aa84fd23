"""Train from an exported dataset file under ``accelerate launch`` or ``torch.distributed.run`` (DDP).

    accelerate launch --multi_gpu --num_processes 2 -m evaltune.retune.accelerate_entry \\
        --base MODEL_DIR --data rows.jsonl --method dpo --output OUT_DIR

Every process runs the same ``retune.train.train``; the Trainer shards the batches and averages gradients
(gloo on CPU, NCCL on GPUs). Without GPUs ``--multi_gpu`` still launches the processes (accelerate's
``--cpu`` launches only one); ``python -m torch.distributed.run --nproc_per_node 2`` works the same way.
The main process saves the adapter and writes ``OUT_DIR/history.json``. The training options are those of
``evaltune retune``, generated from the same config classes (``retune.config``), with the same defaults;
``--batch-size`` is per process. Rows with a ``weight`` column are drawn in proportion to it. A rerun with the
same ``--output`` resumes from its last checkpoint (``resume_from_checkpoint``).

The worker launches it for a job with ``--processes`` above 1 (``retune.launch``), passing the job's stored
config as ``--config config.json`` instead of the options. The main process then prefixes its job-log lines
with ``LOG_MARK``, so that the worker can tell them from the libraries' output of every process.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

from evaltune import settings
from evaltune.retune.config import (
    METHODS,
    OptionField,
    RetuneConfig,
    config_from_options,
    load_config,
    option_fields,
)

LOG_MARK = "evaltune-log| "  # starts each job-log line of the main process, for the worker that reads the output


def _add_option(parser: argparse.ArgumentParser, option: OptionField) -> None:
    """One config field as an argparse option: its flag (and aliases), type, default and help."""
    help_text = option.help_for(METHODS).replace("%", "%%") + " (default: %(default)s)"
    if option.kind is bool:
        parser.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction,
                            default=option.default, help=help_text)
    elif option.kind is tuple:
        parser.add_argument(option.flag, *option.aliases, dest=option.name, nargs="*", default=list(option.default),
                            help=help_text)
    else:
        parser.add_argument(option.flag, *option.aliases, dest=option.name, type=option.kind, default=option.default,
                            help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The command line: what to train on and where, plus every method's config fields."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="base model folder")
    parser.add_argument("--data", required=True, help="JSON Lines rows in TRL's columns (evaltune data export)")
    parser.add_argument("--method", default="dpo", choices=METHODS)
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", help="a stored job config (JSON, as 'evaltune retune' stores it): used instead "
                                         "of the method and its options")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (default: EVALTUNE_THREADS "
                                                               "or the machine's cores)")
    parser.add_argument("--stop-with-pid", type=int, default=0,
                        help="stop when this process (the worker that launched the training) is gone")
    for option in option_fields():
        if not option.launcher:  # processes and sharding are the launch's, decided before this runs
            _add_option(parser, option)
    return parser


def _config(args: argparse.Namespace) -> tuple[RetuneConfig, list[str]]:
    """The config from ``--config`` (with a note for each stored setting dropped), else from the options."""
    if args.config:
        return load_config(json.loads(Path(args.config).read_text(encoding="utf-8")))
    return config_from_options(args.method, vars(args)), []


def _stop_with(pid: int) -> None:
    """End this process once ``pid`` is gone: a worker killed with -9 cannot end the training it launched (its own
    process group), and a retried job must not train beside an orphan in the same folder."""

    def watch() -> None:
        while True:
            time.sleep(2.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass  # alive, under another user

    threading.Thread(target=watch, daemon=True, name="stop-with-worker").start()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train, and (main process) write the loss history next to the adapter."""
    from evaltune.retune.train import train

    settings.quiet_third_party_progress()
    args = build_parser().parse_args(argv)
    if args.stop_with_pid:
        _stop_with(args.stop_with_pid)
    settings.apply_threads(args.threads or None)
    records = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line]
    config, notes = _config(args)
    rank = int(os.environ.get("RANK", "0"))
    output = Path(args.output)
    marked = bool(args.config)  # launched by the worker, which reads the marked lines into the job log

    def log(line: str) -> None:
        if rank == 0:
            print(f"{LOG_MARK}{line}" if marked else line, flush=True)

    for note in notes:
        log(f"warning: {note}")
    result = train(args.base, records, config, output, log=log)
    if rank == 0:
        import torch.distributed as dist

        summary = {"world_size": int(os.environ.get("WORLD_SIZE", "1")), "history": result.history,
                   "backend": dist.get_backend() if dist.is_initialized() else None, "warnings": result.warnings,
                   "merged_dir": str(result.merged_dir) if result.merged_dir else None}
        (output / "history.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
