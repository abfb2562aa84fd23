"""What the load benchmarks share: a store on each backend, percentiles, and a plain-text table.

A PostgreSQL store comes from ``--postgres URL`` (a server; each benchmark makes its own database there) or,
without it, from a throwaway server started the way the test fixture starts one (``tests/fixtures/postgres.py``:
``initdb`` and ``pg_ctl``, as the ``postgres`` user when run as root), so one command measures both backends.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.fixtures.postgres import _as_postgres, _make_workdir, _run, _start, _wait_until_ready, find_pg_bin

BACKENDS = ("sqlite", "postgres")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a PostgreSQL server in a temporary folder; yield ``postgresql+psycopg://postgres@127.0.0.1:PORT``."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found: apt install postgresql, "
                           "set EVALTUNE_PG_BIN, or pass --postgres URL")
    workdir = _make_workdir()
    data, pg_ctl = str(workdir / "data"), str(pg_bin / "pg_ctl")
    try:
        _run([str(pg_bin / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        port = _start(pg_ctl, data, workdir)
        try:
            _wait_until_ready(f"postgresql://postgres@127.0.0.1:{port}/postgres")
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run(_as_postgres([pg_ctl, "-D", data, "stop", "-m", "immediate"]), capture_output=True,
                           check=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def new_database(server_url: str) -> str:
    """Create an empty database on the server at ``server_url`` (no database part); return its URL."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://").rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, not user input
    return f"{server_url.rstrip('/')}/{name}"


@contextmanager
def store_urls(backends: Sequence[str], folder: Path, postgres: str | None = None) -> Iterator[dict[str, str]]:
    """A fresh store URL per backend: a SQLite file in ``folder``, a new database on the PostgreSQL server."""
    with ExitStack() as stack:
        urls = {}
        for backend in backends:
            if backend == "sqlite":
                urls[backend] = f"sqlite:///{folder / 'bench.db'}"
            elif backend == "postgres":
                server = postgres or stack.enter_context(throwaway_postgres())
                urls[backend] = new_database(server)
            else:
                raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        yield urls


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned plain-text table (floats with one decimal)."""
    if not rows:
        return "(no rows)"
    cells = [[f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    header = list(rows[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
