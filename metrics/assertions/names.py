"""The names a run's assertion results are stored under, shared by the harness (which writes them) and the reports
(which read them): ``assertions`` (an output's verdict), ``assertion_score`` (its weighted score) and
``assertion:K`` (the K-th assertion of its item, from 1; the suite's defaults first)."""

from __future__ import annotations

VERDICT_SCORER = "assertions"
SCORE_SCORER = "assertion_score"
PER_ASSERTION_PREFIX = "assertion:"
# The run-metric scorers of assertions: re-scoring replaces their metrics as it replaces a scorer's.
ASSERTION_SCORERS = (VERDICT_SCORER, SCORE_SCORER)
# No scorer may take these names: the stored rows would mix (``metrics.registry`` refuses them).
RESERVED_NAMES = frozenset(ASSERTION_SCORERS)


def per_assertion_scorer(k: int) -> str:
    """The scorer name of an item's K-th assertion (K from 1)."""
    return f"{PER_ASSERTION_PREFIX}{k}"


def is_per_assertion(scorer: str) -> bool:
    """True for ``assertion:K`` rows: details of one check, not a scorer a user lists or filters by."""
    return scorer.startswith(PER_ASSERTION_PREFIX)
