"""Progress on the terminal: one tqdm bar per long step (generating, scoring, training, the demo's stages).

A bar is drawn on standard error only when that is a terminal and no ``silenced()`` block is open (a command
printing JSON opens one). Piped into a file or a CI log, or under a test runner, every bar is silent, so no
carriage-return lines are left for a reader to skip. A finished bar disappears: the command's own lines say
what was done.

The code that does the work never sees a bar, only plain callbacks made from one (``on_progress=bar.update_to``,
``on_output=bar.advance``), so it stays usable without a terminal.

This module imports nothing else of evaltune's, so every part may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

_silenced = 0  # how many ``silenced()`` blocks are open


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced stream without isatty, or a closed one
        return False


def drawn(stream: TextIO | None = None) -> bool:
    """Whether a bar made now would be drawn on ``stream`` (standard error when None)."""
    return not _silenced and _is_terminal(stream or sys.stderr)


@contextmanager
def silenced(when: bool = True) -> Iterator[None]:
    """No bars are drawn inside this block (``when`` False: no change), e.g. while a command prints JSON."""
    global _silenced
    _silenced += when
    try:
        yield
    finally:
        _silenced -= when


class Progress:
    """One bar counting ``unit``s toward ``total`` (None: unknown, a count and a rate are shown).

    ``advance`` adds to the count; ``update_to`` sets it (a ``(done, total)`` callback). The bar appears at its
    first update or note, not before (a command's own lines may come first), closes itself when it reaches its
    total, and closes on leaving a ``with`` block. ``done`` is counted whether or not a bar is drawn.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", stream: TextIO | None = None):
        self.desc, self.unit, self.stream = desc, unit, stream
        self.done = 0
        self.total = total
        self.closed = False
        self._bar: tqdm[None] | None = None

    def _drawn(self) -> tqdm[None]:
        if self._bar is None:
            stream = self.stream or sys.stderr
            self._bar = tqdm(total=self.total, initial=self.done, desc=self.desc, unit=self.unit, file=stream,
                             leave=False, dynamic_ncols=True, disable=not drawn(stream))
        return self._bar

    def advance(self, count: int = 1) -> None:
        """``count`` more are done."""
        self.update_to(self.done + count, self.total)

    def update_to(self, done: int, total: int | None) -> None:
        """``done`` of ``total`` are done now."""
        if self.closed:
            return
        if total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        if self._bar is None:  # what was done before the first update (a resumed run) is not in the rate
            self.done = done
        self._drawn().update(done - self.done)
        self.done = done
        if total is not None and done >= total:
            self.close()

    def note(self, text: str) -> None:
        """Show ``text`` after the counts (what is being worked on now)."""
        if not self.closed:
            self._drawn().set_postfix_str(text)

    def close(self) -> None:
        """Take the bar off the terminal; later updates are ignored."""
        if not self.closed:
            self.closed = True
            if self._bar is not None:
                self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def printing(write: Callable[[str], None]) -> Callable[[str], None]:
    """``write`` (a function that prints a line) made safe to call while bars are drawn: they are taken off
    the terminal for the line and drawn again below it, instead of the line landing in the middle of one."""

    def write_between_bars(line: str) -> None:
        with tqdm.external_write_mode():
            write(line)

    return write_between_bars
