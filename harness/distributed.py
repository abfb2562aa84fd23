"""Data-parallel runs: the processes of one ``accelerate launch`` (or ``torchrun``) share one run.

    accelerate launch --multi_gpu --num_processes 2 -m evaltune run SUITE --model M

A launcher starts the same command in every process and tells each its place through the environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). ``current_launch()`` reads that place through accelerate's
``PartialState``, which also joins the process group (NCCL on GPUs, gloo on the CPU); without a launcher it is
``SINGLE`` and nothing distributed is imported. The runner (``harness.runner.run_suite``) then lets the main
process create or resume the run, gives every process a disjoint ``shard`` of the work, and meets them again
(``gather``) before the main process scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from evaltune.harness.work import Work
from evaltune.settings import SettingError

if TYPE_CHECKING:
    from accelerate import PartialState

T = TypeVar("T")
# How long a process waits for the others at a barrier. In a sweep the others wait while the main process scores a
# cell (an LLM judge over thousands of outputs), which may take far longer than torch's default of 10 minutes.
BARRIER_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    machines: int = 1  # the machines the processes run on (a store they all reach is needed above 1)

    @property
    def is_main(self) -> bool:
        """The process that creates the run, scores it and prints the summary."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def shard(self, work: Sequence[Work]) -> list[Work]:
        """This process's share of ``work``: every ``world_size``-th unit of it ordered by kind and prompt length.

        Striding the length-ordered list gives each process the same mix of multiple-choice and text units and of
        short and long prompts (so no process waits on all the long ones), and shares differ by one unit at most.
        The order depends only on the work itself, so every process (and a relaunch) draws the same shards.
        """
        if not self.parallel:
            return list(work)
        ordered = sorted(work, key=lambda w: (w.item.is_multiple_choice, len(w.prompt_text), w.item.id,
                                              w.sample_index))
        return ordered[self.rank :: self.world_size]

    def wait_for_everyone(self) -> None:
        """A barrier: returns once every process of the launch has reached it (at once for one process)."""
        if self.parallel:
            _state().wait_for_everyone()

    def gather(self, value: T) -> list[T]:
        """Every process's ``value``, in rank order, on every process (a barrier too)."""
        if not self.parallel:
            return [value]
        from accelerate.utils import gather_object

        gathered: list[T] = gather_object([value])
        return gathered

    def main_first(self, action: Callable[[], T]) -> T:
        """``action()`` in the main process, then (after a barrier) in the others: the main process creates what
        is new (a run, a sweep), the others then find it by its fingerprint, so no two processes race to make it."""
        if self.is_main:
            result = action()
        self.wait_for_everyone()
        if not self.is_main:
            result = action()
        return result

    def close(self) -> None:
        """Leave the process group (once the launch's collective work is done), so torch exits cleanly."""
        if self.parallel:
            _state().destroy_process_group()


SINGLE = Launch()


def current_launch() -> Launch:
    """The launch this process belongs to: ``SINGLE`` unless a launcher set ``WORLD_SIZE`` above 1, in which case
    the process joins the launch's process group (once; later calls return the same place). Raises
    ``SettingError`` when ``WORLD_SIZE`` is not a whole number."""
    world_size = _launch_number("WORLD_SIZE", 1)
    if world_size <= 1:
        return SINGLE
    per_machine = _launch_number("LOCAL_WORLD_SIZE", world_size)  # torchrun sets it; absent: one machine
    state = _state()
    return Launch(int(state.process_index), int(state.num_processes), int(state.local_process_index),
                  machines=max(1, -(-world_size // max(1, per_machine))))


def _launch_number(name: str, default: int) -> int:
    """A launcher's environment variable as a whole number; ``SettingError`` naming it otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number; it is set by accelerate launch or torchrun "
                           "(how many processes run): unset it to run in one process") from None


@cache
def _state() -> PartialState:
    """accelerate's view of the launch, joining its process group: NCCL where CUDA is there, else gloo."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)

