"""Train from an exported dataset file under ``accelerate launch`` or ``torch.distributed.run`` (DDP).

    accelerate launch --multi_gpu --num_processes 2 -m evaltune.retune.accelerate_entry \\
        --base MODEL_DIR --data rows.jsonl --method dpo --output OUT_DIR

Every process runs the same ``retune.train.train``; the Trainer shards the batches and averages gradients
(gloo on CPU, NCCL on GPUs). Without GPUs ``--multi_gpu`` still launches the processes (accelerate's
``--cpu`` launches only one); ``python -m torch.distributed.run --nproc_per_node 2`` works the same way.
The main process saves the adapter and writes ``OUT_DIR/history.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evaltune.retune.config import RetuneConfig
from evaltune.retune.train import train


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train, and (main process) write the loss history next to the adapter."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="base model folder")
    parser.add_argument("--data", required=True, help="JSON Lines rows in TRL's columns (evaltune data export)")
    parser.add_argument("--method", default="dpo", choices=["dpo", "kto", "sft"])
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=4, help="per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    threads = int(os.environ.get("EVALTUNE_THREADS", "0"))
    if threads:
        import torch

        torch.set_num_threads(threads)
    records = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line]
    config = RetuneConfig(method=args.method, epochs=args.epochs, learning_rate=args.lr,
                          batch_size=args.batch_size, seed=args.seed)
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
