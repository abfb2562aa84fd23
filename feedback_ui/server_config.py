"""How the rating app's Streamlit server runs: the flags ``evaltune ui`` passes, and the heap kept out of the
garbage collector's way.

Measured with ``bench/load_browser.py`` (real browsers through ``evaltune ui``): before these settings the server
spent about 0.2-0.3 CPU-seconds per rating, half or more of it in the full garbage collection Streamlit runs
after every script run (``runner.postScriptGC``), walking the ~180,000 objects that the imported modules
(Streamlit, SQLAlchemy, pandas, pyarrow) keep alive for the life of the process.
"""

from __future__ import annotations

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
