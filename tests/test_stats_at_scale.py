"""Two stored runs of 5,000 items that differ on 1,200: ``report`` and ``gate`` hold, in bounded memory.

McNemar's exact test used to divide by ``2.0**discordant`` and raised OverflowError from 1,024 discordant
pairs; the bootstraps and sign flips drew one (resamples x items) array, 400 MB for the sign flips here.
The runs are stored the way the runner stores them (the store's query helpers, then the real scorers).
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from evaltune.db import open_store, queries
from evaltune.db.evaluation import Run
from evaltune.harness.scoring import score_run
from evaltune.metrics.stats.paired import benjamini_hochberg
from evaltune.reports.records import REPORT_SCHEMA_VERSION
from tests.conftest import invoke_main

N = 5000
BASELINE_WRONG = set(range(0, 700))  # the candidate gains these 700 items ...
CANDIDATE_WRONG = set(range(700, 1200))  # ... and loses these 500: 1,200 discordant pairs
SCORERS = ("exact_match", "token_f1")  # 0/1 (McNemar) and 1 or 0.5 (sign-flip permutation test)
# Far above what the chunked statistics hold (about 8 MB per array), far below one unchunked array: the
# baseline and candidate bootstraps alone drew 2 x 2000 x 5000 int64 (160 MB), the sign flips 400 MB.
PEAK_BOUND_MB = 64


def _output(i: int, wrong: set[int]) -> str:
    # A wrong answer shares one of the reference's two tokens: exact_match 0, token_f1 0.5.
    return f"answer x{i}" if i in wrong else f"answer {i}"


def _store_run(url: str, model: str, wrong: set[int]) -> int:
    store = open_store(url)
    try:
        with store.session_scope() as session:
            suite = queries.get_or_create_suite(session, name="scale", content_hash="scale-5000".ljust(64, "0"), items=[
                {"key": f"q{i:04d}", "input": f"Question {i}?", "references": [f"answer {i}"],
                 "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(N)])
            version = queries.get_or_create_model_version(session, name=model, backend="hf",
                                                          location=f"/models/{model}", fingerprint=f"fp-{model}")
            run = Run(suite_id=suite.id, model_version_id=version.id, fingerprint=f"run-{model}",
                      scorers=list(SCORERS), status="running")
            session.add(run)
            session.flush()
            item_ids = {item.key: item.id for item in suite.items}
            queries.insert_generations(session, [
                {"run_id": run.id, "item_id": item_ids[f"q{i:04d}"], "sample_index": 0, "cache_key": f"{model}-{i}",
                 "prompt": f"Question {i}?", "output": _output(i, wrong)} for i in range(N)])
            score_run(session, run.id, SCORERS)
            run.status = "completed"
            return run.id
    finally:
        store.close()


@pytest.fixture(scope="module")
def scale_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'store.db'}"
    yield url, _store_run(url, "base", BASELINE_WRONG), _store_run(url, "tuned", CANDIDATE_WRONG)


def _peak_mb(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` and the peak memory it allocated (Python objects and numpy arrays), in MB."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _sign_flip_p_value(diffs: np.ndarray) -> float:
    """scipy's sign-flip test of |sum| (ours is two-sided that way; scipy's "two-sided" doubles one tail)."""
    result = stats.permutation_test((diffs,), lambda d, axis: np.abs(np.sum(d, axis=axis)), alternative="greater",
                                    permutation_type="samples", vectorized=True, n_resamples=10_000, batch=200,
                                    random_state=0)
    return float(result.pvalue)


def test_report_and_gate_on_1200_discordant_pairs(scale_store: tuple[str, int, int], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, baseline, candidate = scale_store
    monkeypatch.setenv("EVALTUNE_DB_URL", url)

    (code, out, err), peak = _peak_mb(lambda: invoke_main(
        ["report", str(baseline), str(candidate), "--format", "json"], monkeypatch, capsys))
    assert code == 0, err
    assert peak < PEAK_BOUND_MB, f"report peaked at {peak:.0f} MB"
    report = json.loads(out)
    assert report["shared_items"] == N and report["schema_version"] == REPORT_SCHEMA_VERSION
    metrics = {m["name"]: m for m in report["metrics"]}
    em, f1 = metrics["exact_match"], metrics["token_f1"]
    mcnemar = stats.binomtest(len(BASELINE_WRONG), len(BASELINE_WRONG) + len(CANDIDATE_WRONG), 0.5).pvalue
    assert em["test"] == "mcnemar" and em["p_value"] == pytest.approx(mcnemar, rel=1e-12)
    assert em["delta"] == pytest.approx((700 - 500) / N) and em["delta_ci_low"] < em["delta"] < em["delta_ci_high"]
    diffs = np.array([(i in BASELINE_WRONG) * 0.5 - (i in CANDIDATE_WRONG) * 0.5 for i in range(N)])
    assert f1["test"] == "permutation" and f1["p_value"] == pytest.approx(_sign_flip_p_value(diffs))
    assert [em["q_value"], f1["q_value"]] == pytest.approx(benjamini_hochberg([em["p_value"], f1["p_value"]]))
    assert len(report["flipped"]) == 1200 and report["verdict"] == "better"

    gate_file = tmp_path / "gates.yaml"
    gate_file.write_text("exact_match: {min: 0.85, no_significant_regression: {min_effect: 0.01}}\n"
                         "token_f1: {no_significant_regression: true}\n")
    (code, out, err), peak = _peak_mb(lambda: invoke_main(
        ["gate", str(baseline), str(candidate), "--gate", str(gate_file)], monkeypatch, capsys))
    assert code == 0, out + err
    assert peak < PEAK_BOUND_MB, f"gate peaked at {peak:.0f} MB"
    assert out.count("PASS") == 3 and "gate passed" in out
    printed_q = re.search(r"exact_match no_significant_regression: .* q = (\S+)", out)
    assert printed_q is not None and printed_q.group(1) == f"{em['q_value']:.4g}"

    # The other way round, the same 1,200 pairs are a significant regression: exit 1, not a crash.
    code, out, err = invoke_main(["gate", str(candidate), str(baseline), "--gate", str(gate_file)],
                                 monkeypatch, capsys)
    assert code == 1 and "significant regression of at least 0.01" in out, out + err
