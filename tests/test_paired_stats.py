"""Paired comparisons against scipy and statsmodels-free reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaltune.metrics.stats.paired import (
    benjamini_hochberg,
    mcnemar_exact,
    paired_delta,
    sign_flip_permutation,
)

stats = pytest.importorskip("scipy.stats", reason="scipy is the reference implementation (dev extra)")


# (520, 505) and beyond: 1,024 or more discordant pairs overflowed 2.0**n in the hand-written tail.
@pytest.mark.parametrize(("gained", "lost"), [(0, 0), (3, 0), (10, 4), (25, 40), (7, 7), (520, 505), (700, 500),
                                              (30_000, 29_000), (0, 5_000)])
def test_mcnemar_exact_equals_a_two_sided_binomial_test(gained: int, lost: int) -> None:
    expected = 1.0 if gained + lost == 0 else stats.binomtest(gained, gained + lost, 0.5).pvalue
    assert mcnemar_exact(gained, lost) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_chunked_resampling_draws_what_one_big_array_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bootstrap and the sign flips draw in row chunks; numpy's stream must not depend on the split."""
    from evaltune.metrics.stats import intervals

    monkeypatch.setattr(intervals, "RESAMPLE_CELLS", 1000)  # chunks of 3 rows: many splits, some uneven
    rng = np.random.default_rng(8)
    diffs = rng.normal(0.05, 1.0, size=301)
    chunked = paired_delta([0.0] * diffs.size, list(diffs), seed=4)
    whole = np.random.default_rng(4)
    means = diffs[whole.integers(0, diffs.size, size=(intervals.BOOTSTRAP_RESAMPLES, diffs.size))].mean(axis=1)
    assert (chunked.ci_low, chunked.ci_high) == tuple(np.percentile(means, [2.5, 97.5]))
    signs = np.random.default_rng(4).choice(np.array([-1.0, 1.0]), size=(10_000, diffs.size))
    at_least = np.sum(np.abs(signs @ diffs) >= abs(diffs.sum()) - 1e-12)
    assert chunked.p_value == (at_least + 1) / 10_001
    assert len(list(intervals.resample_chunks(diffs.size, 2000))) > 1  # the split really happens at this size


def test_exact_sign_flip_matches_scipy_permutation_test() -> None:
    diffs = np.array([0.3, -0.1, 0.4, 0.2, 0.5, -0.2, 0.1, 0.35])
    expected = stats.permutation_test(
        (diffs,), lambda x: np.sum(x), permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    ).pvalue
    assert sign_flip_permutation(diffs) == pytest.approx(expected, abs=1e-12)


def test_sampled_sign_flip_is_close_to_the_normal_theory_answer() -> None:
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.2, 1.0, size=200)
    t_p = stats.ttest_1samp(diffs, 0.0).pvalue
    assert sign_flip_permutation(diffs, seed=0) == pytest.approx(t_p, abs=0.01)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.20, 0.005, math.nan]
    expected = list(stats.false_discovery_control(p[:-1], method="bh"))
    got = benjamini_hochberg(p)
    assert got[:-1] == pytest.approx(expected, abs=1e-12)
    assert math.isnan(got[-1])


def test_paired_delta_on_binary_scores_uses_mcnemar_and_its_ci_holds_the_true_delta() -> None:
    baseline = [1.0] * 50 + [0.0] * 50
    candidate = [1.0] * 40 + [0.0] * 10 + [1.0] * 30 + [0.0] * 20  # 10 lost, 30 gained: +0.2
    result = paired_delta(baseline, candidate)
    assert result.test == "mcnemar" and result.n == 100
    assert result.delta == pytest.approx(0.2)
    assert result.ci_low < 0.2 < result.ci_high and result.ci_low > 0
    assert result.p_value == pytest.approx(stats.binomtest(30, 40, 0.5).pvalue)


def test_paired_delta_of_identical_runs_is_zero_with_p_one() -> None:
    scores = [0.2, 0.5, 0.9, 0.4]
    result = paired_delta(scores, scores)
    assert (result.delta, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_delta_refuses_unpaired_inputs() -> None:
    with pytest.raises(ValueError, match="same items"):
        paired_delta([1.0, 0.0], [1.0])
