"""Start-up cost: ``evaltune --help`` and the imports of a run, against ``lm_eval --help``.

    python bench/speed_startup.py [--runs 7]

Each command runs as a fresh process ``--runs`` times; the table gives the median wall time and peak memory.
"a run's own imports" is what ``evaltune run`` imports before it loads a model (the store, the runner, the
suite loaders and the scorer registry), so torch and transformers are not in it: they arrive with the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import Row, bench_env, repeat, run_process, table

COMMANDS = {
    "evaltune --help": [sys.executable, "-m", "evaltune", "--help"],
    "a run's own imports": [sys.executable, "-c",
                            "import evaltune.evaluate, evaltune.harness.runner, evaltune.harness.loaders, "
                            "evaltune.metrics.registry"],
    "import torch, transformers": [sys.executable, "-c", "import torch, transformers"],
    "lm_eval --help": [sys.executable, "-m", "lm_eval", "--help"],
}


def time_command(name: str, command: list[str], runs: int) -> Row:
    return repeat(Row("start-up", name, unit="/s", work=1.0), runs, lambda _: run_process(command, bench_env(1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    rows = [time_command(name, command, args.runs) for name, command in COMMANDS.items()]
    print()
    print(table(rows, baseline_tool="lm_eval --help"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
