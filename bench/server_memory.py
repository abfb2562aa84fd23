"""Where the rating server's memory goes: run the Streamlit server with a probe that writes, every ``--every``
seconds, its resident memory (RSS), what glibc's allocator holds in use and free and in how many arenas, the
number of Python objects, and with ``--python`` (or ``PYTHONTRACEMALLOC=N`` in its environment) the Python
allocation sites (tracemalloc) that grew most since the first probe.

    python bench/server_memory.py OUT.log [--every 60] [--python [--frames 6]] -- streamlit run SERVER.py ...

``bench/load_browser.py --trace-memory OUT.log`` starts the server this way (instead of ``evaltune ui``). Nothing
here runs in a normal server: this is a separate launcher, and tracemalloc costs CPU, so CPU figures from a
traced run are not comparable with untraced ones.

How to read it: ``sqlite_heap`` is what SQLite holds (its page caches, one per open connection, up to
``cache_size`` each); ``malloc_used`` is every live C allocation (SQLite's among them); pymalloc's own
arenas come from mmap and are not in it, so Python objects show in the ``objects`` count (and with ``--python``
in tracemalloc's total). If RSS grows while ``malloc_used`` and the objects stay, nothing is leaking: the
allocator keeps freed memory (``malloc_free``), typically spread over many per-thread arenas. tracemalloc's
snapshots are large and churn the heap themselves: leave ``--python`` off when watching RSS.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, TextIO

TOP = 15  # allocation sites listed per probe
SQLITE_CONFIG_MEMSTATUS = 9  # sqlite3.h


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc, or one older than 2.33
        return None


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _sqlite() -> Any:
    """The SQLite library the sqlite3 module links, its memory counters switched on (``SQLITE_CONFIG_MEMSTATUS``;
    Debian builds it off). Call before anything opens a database: SQLite takes configuration only until then."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return None
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(1))
    return lib


def _arenas(libc: Any) -> int:
    """How many malloc arenas (heaps) glibc has: one per ``<heap nr=`` in ``malloc_info``'s report."""
    path = Path(f"/tmp/server_memory_{threading.get_native_id()}.xml")
    try:
        libc.fopen.restype = ctypes.c_void_p
        handle = libc.fopen(str(path).encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(handle))
        libc.fclose(ctypes.c_void_p(handle))
        return path.read_text().count("<heap nr=")
    except (OSError, AttributeError):
        return -1
    finally:
        path.unlink(missing_ok=True)


def _types() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def probe(out: TextIO, every: float, frames: int, python: bool, sqlite: Any) -> None:
    """Every ``every`` seconds: one line of totals, then the object types (and with ``python`` the allocation
    sites) that grew most since the first probe."""
    libc = _libc()
    first: tracemalloc.Snapshot | None = None
    first_types: collections.Counter[str] = collections.Counter()
    began = time.monotonic()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib*")]
    while True:
        time.sleep(every)
        snapshot = tracemalloc.take_snapshot().filter_traces(filters) if python else None
        traced = tracemalloc.get_traced_memory()[0] / 2**20 if python else float("nan")
        types = _types()
        info = libc.mallinfo2() if libc else None
        line = (f"at {time.monotonic() - began:7.0f} s  rss {rss_mib():7.1f} MiB  python {traced:6.1f} MiB  "
                f"arenas {_arenas(libc) if libc else -1:3d}  "
                f"sqlite_heap {sqlite.sqlite3_memory_used() / 2**20 if sqlite else float('nan'):5.1f} MiB  "
                f"malloc_used {info.uordblks / 2**20 if info else float('nan'):6.1f} MiB  "
                f"malloc_free {info.fordblks / 2**20 if info else float('nan'):6.1f} MiB  "
                f"mmapped {info.hblkhd / 2**20 if info else float('nan'):6.1f} MiB  objects {sum(types.values())}  "
                f"threads {threading.active_count()}")
        print(line, file=out, flush=True)
        if not first_types:
            first, first_types = snapshot, types
            continue
        for stat in snapshot.compare_to(first, "traceback")[:TOP] if snapshot and first else []:
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[:frames])
            print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}", file=out)
        grown = (types - first_types).most_common(8)
        print("    objects grown: " + ", ".join(f"{name} +{n}" for name, n in grown), file=out, flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("log", type=Path, help="where the probe writes")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between probes")
    parser.add_argument("--python", action="store_true", help="trace Python allocations too (costly)")
    parser.add_argument("--frames", type=int, default=6, help="with --python: frames kept per allocation")
    args = parser.parse_args(argv[:split])
    streamlit_args = argv[split + 1:]
    if streamlit_args[:1] != ["streamlit"]:
        parser.error("after --, give the server's command: streamlit run ...")
    args.python = args.python or tracemalloc.is_tracing()  # PYTHONTRACEMALLOC=N set for the server: trace
    if args.python and not tracemalloc.is_tracing():
        tracemalloc.start(args.frames)
    sqlite = _sqlite()
    out = args.log.open("w", encoding="utf-8")
    threading.Thread(target=probe, args=(out, args.every, args.frames, args.python, sqlite), daemon=True,
                     name="memory-probe").start()
    from streamlit.web import cli

    sys.argv = streamlit_args
    cli.main()


if __name__ == "__main__":
    main()
