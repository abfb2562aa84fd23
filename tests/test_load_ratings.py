"""Twenty annotators rating at once for 30 seconds, on SQLite and on PostgreSQL: every acknowledged rating is
stored, exactly once, and the submit latency is printed (the 5-minute run is ``bench/load_ratings.py``)."""

from __future__ import annotations

import pytest

from bench.load_ratings import LoadSettings, run_load
from bench.loadkit import table

SESSIONS, SECONDS = 20, 30.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_twenty_annotators_lose_nothing_and_double_nothing(store_url: str) -> None:
    result = run_load(store_url, LoadSettings(sessions=SESSIONS, seconds=SECONDS, overlap=3))
    print(f"\n{table([result.row()])}")
    assert result.problems() == []  # no error, nothing lost or unacknowledged, no duplicate, counters right
    assert result.acknowledged == result.audit.stored > 0
    assert len(result.tallies) == SESSIONS and result.seconds >= SECONDS
