"""Train from an exported dataset file under ``accelerate launch`` or ``torch.distributed.run`` (DDP).

    accelerate launch --multi_gpu --num_processes 2 -m evaltune.retune.accelerate_entry \\
        --base MODEL_DIR --data rows.jsonl --method dpo --output OUT_DIR

Every process runs the same ``retune.train.train``; the Trainer shards the batches and averages gradients
(gloo on CPU, NCCL on GPUs). Without GPUs ``--multi_gpu`` still launches the processes (accelerate's
``--cpu`` launches only one); ``python -m torch.distributed.run --nproc_per_node 2`` works the same way.
The main process saves the adapter and writes ``OUT_DIR/history.json``. The training options are those of
``evaltune retune``, generated from the same config classes (``retune.config``), with the same defaults;
``--batch-size`` is per process. Rows with a ``weight`` column are drawn in proportion to it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evaltune import settings
from evaltune.retune.config import METHODS, OptionField, config_from_options, option_fields


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
    for option in option_fields():
        _add_option(parser, option)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train, and (main process) write the loss history next to the adapter."""
    from evaltune.retune.train import train

    settings.quiet_third_party_progress()
    args = build_parser().parse_args(argv)
    settings.apply_threads()
    records = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line]
    config = config_from_options(args.method, vars(args))
    rank = int(os.environ.get("RANK", "0"))
    output = Path(args.output)
    result = train(args.base, records, config, output, log=print if rank == 0 else (lambda _line: None))
    if rank == 0:
        import torch.distributed as dist

        summary = {"world_size": int(os.environ.get("WORLD_SIZE", "1")), "history": result.history,
                   "backend": dist.get_backend() if dist.is_initialized() else None}
        (output / "history.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
