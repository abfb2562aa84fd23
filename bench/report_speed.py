"""How long a comparison of two runs of 5,000 items takes to build and render in every format.

    python bench/report_speed.py [--items 5000]

Seeds a fresh SQLite store in a temporary folder (three scorers per item: two 0/1, one continuous),
then times building the report and rendering HTML, Markdown, JSON and JUnit (with a gate file), and
measures the build's peak memory (Python objects and numpy arrays, by tracemalloc, in a second build so
that tracing does not slow the timed one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaltune.db import open_store
from evaltune.reports.compare import build_report
from evaltune.reports.gates import check_gates, load_gates
from evaltune.reports.junit import render_junit
from evaltune.reports.render import render_report
from tests.fixtures.report_seed import seed_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        started = time.perf_counter()
        with store.session_scope() as session:
            ids = seed_runs(session, args.items)
        print(f"seeded 2 x {args.items} items in {time.perf_counter() - started:.2f}s")
        gate_file = Path(folder) / "gates.yaml"
        gate_file.write_text("exact_match: {min: 0.5, no_significant_regression: {min_effect: 0.01}}\n")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with store.session_scope() as session:
            report = build_report(session, ids.baseline, ids.candidate)
        timings["build (load + statistics)"] = time.perf_counter() - started
        tracemalloc.start()
        with store.session_scope() as session:
            build_report(session, ids.baseline, ids.candidate)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        outcome = check_gates(report, load_gates(gate_file))
        for fmt in ("html", "md", "json"):
            started = time.perf_counter()
            text = render_report(report, fmt, outcome)
            timings[f"render {fmt} ({len(text) / 1024:.0f} KiB)"] = time.perf_counter() - started
        started = time.perf_counter()
        render_junit(outcome)
        timings["render junit"] = time.perf_counter() - started
        store.close()
    for name, seconds in timings.items():
        print(f"{name:<32} {seconds:7.3f}s")
    print(f"{'total':<32} {sum(timings.values()):7.3f}s")
    print(f"{'build peak memory':<32} {peak_mb:7.1f} MB")


if __name__ == "__main__":
    main()
