"""How the rating app's Streamlit server runs: the flags ``evaltune ui`` passes, the heap kept out of the
garbage collector's way, and the C allocator kept from holding memory in one arena per thread.

Measured with ``bench/load_browser.py`` (real browsers through ``evaltune ui``): before these settings the server
spent about 0.2-0.3 CPU-seconds per rating, half or more of it in the full garbage collection Streamlit runs
after every script run (``runner.postScriptGC``), walking the ~180,000 objects that the imported modules
(Streamlit, SQLAlchemy, pandas, pyarrow) keep alive for the life of the process.

And its resident memory grew with the ratings (244 -> 289 MiB over 30 minutes and 12,018 ratings) while what it
held did not: the server has 30-40 threads (a new one for every script run, a pool serving files), glibc gives
threads their own malloc arenas (up to 8 per core), and each arena keeps the memory freed in it. With two arenas
the allocator's kept-free bytes stay at 1-2 MiB instead of climbing (``bench/server_memory.py`` shows the arenas,
the allocator's used and free bytes, SQLite's heap and the Python objects; docs/annotators-day.md the runs).
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
from collections.abc import Mapping

# Option -> value, each with why. An operator's own STREAMLIT_* environment variable for an option wins.
SERVER_SETTINGS: dict[str, str] = {
    # The app is installed code, not a script being edited: watching its files only costs work per browser
    # session (each one maps the ~2,000 loaded modules to files and watches the app's own; without watchdog
    # installed, by polling them five times a second).
    "server.fileWatcherType": "none",
}

# glibc's mallopt parameter for the most arenas (malloc.h: M_ARENA_MAX), and the number the server keeps to. Two,
# not one: the threads that run without the interpreter lock (SQLite's queries, the websocket's I/O) then do
# not all queue on one arena's lock.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2
_modules_when_frozen = 0  # len(sys.modules) when the heap was last frozen


def env_name(option: str) -> str:
    """Streamlit's environment variable for ``option``, e.g. ``STREAMLIT_RUNNER_POST_SCRIPT_GC``."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", option.replace(".", "_"))
    return f"STREAMLIT_{snake.upper()}"


def server_flags(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``streamlit run`` flags for ``SERVER_SETTINGS``, leaving out any option the environment sets itself
    (a command-line flag would otherwise override the operator's variable)."""
    environ = os.environ if environ is None else environ
    flags: list[str] = []
    for option, value in SERVER_SETTINGS.items():
        if env_name(option) not in environ:
            flags += [f"--{option}", value]
    return flags


def freeze_imported_objects() -> bool:
    """Move every object alive now into the collector's permanent generation, once per batch of new imports;
    True when it froze. Called at the top of each script run; does nothing outside a Streamlit server.

    Module-level objects live as long as the server, so walking them in every post-run collection gains nothing;
    frozen, a collection walks only what script runs created since, and garbage cycles are still collected.
    A page that imports more modules later (Retune: TRL) is frozen again on its next run.
    """
    global _modules_when_frozen
    if len(sys.modules) == _modules_when_frozen or not _in_server():
        return False
    gc.collect()  # garbage now would otherwise be frozen and never freed
    gc.freeze()
    _modules_when_frozen = len(sys.modules)
    return True


def _in_server() -> bool:
    # AppTest and the command line run pages without a Streamlit runtime: leave their heaps alone.
    from streamlit import runtime

    return runtime.exists()


def server_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``evaltune ui`` starts Streamlit with: this one, plus ``MALLOC_ARENA_MAX`` (glibc reads it
    when the process starts, before any thread has an arena) unless the operator set their own."""
    environ = os.environ if environ is None else environ
    return {"MALLOC_ARENA_MAX": str(MALLOC_ARENAS), **environ}


def limit_malloc_arenas(environ: Mapping[str, str] | None = None) -> bool:
    """Keep glibc's allocator from making more than ``MALLOC_ARENAS`` arenas in this process from now on; True
    when it did. For a server started with ``streamlit run feedback_ui/server.py`` rather than ``evaltune ui``:
    called when ``server.py`` is imported, it cannot take back arenas that threads made before.

    Leaves it alone where ``MALLOC_ARENA_MAX`` is set (``evaltune ui`` sets it, or the operator did; glibc has read
    it already) and where the C library is not glibc (no ``mallopt``, or one that refuses the parameter).
    """
    environ = os.environ if environ is None else environ
    if "MALLOC_ARENA_MAX" in environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already uses
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS))
