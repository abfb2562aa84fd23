"""Settings from the environment (prefix ``EVALTUNE_``), read when asked, never at import."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$EVALTUNE_HOME`` (default ``~/.evaltune``): the SQLite file, model cache, adapters, reports."""
    from evaltune.errors import UserError

    path = Path(os.environ.get("EVALTUNE_HOME") or Path.home() / ".evaltune").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise UserError(f"EVALTUNE_HOME: cannot use {path} as evaltune's folder ({exc.strerror}); "
                        "point EVALTUNE_HOME at a folder you can write") from exc
    return path


def threads() -> int:
    """Torch threads: ``$EVALTUNE_THREADS`` or the machine's cores. Set explicitly because torch's
    default oversubscribes a shared machine and makes timings swing tenfold."""
    value = os.environ.get("EVALTUNE_THREADS")
    if value:
        if not value.strip().isdigit():
            from evaltune.errors import UserError

            raise UserError(f"EVALTUNE_THREADS: '{value}' is not a whole number; set it to the torch threads to "
                            "use (for example 2), or unset it to use every core")
        return max(1, int(value))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evaltune")
    except PackageNotFoundError:
        return "unknown"
