"""``evaltune demo`` end to end on the tiny model, in-process: base runs, simulated ratings through the annotation
queue, a DPO job run by the worker, a re-run of the held-out items, the comparison."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from evaltune.cli import cli
from evaltune.db import open_store
from evaltune.db.ratings import Assignment, CampaignItem, Rating
from evaltune.db.training import PreferenceDataset, RetuneJob


def test_the_demo_closes_the_loop_and_rates_through_the_queue(tiny_model_dir: Path, _private_home: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--model", str(tiny_model_dir), "--train-share", "0.1",
                                      "--epochs", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "hallucination rate, held-out fictional items:" in result.output and "wall times:" in result.output
    summary = json.loads((_private_home / "demo" / "summary.json").read_text(encoding="utf-8"))
    assert summary["adapter_model_id"] and set(summary["runs"]) == {"base_train", "base_heldout", "tuned_heldout"}

    store = open_store()
    with store.session_scope() as session:
        ratings = session.scalars(select(Rating)).all()
        items = session.scalars(select(CampaignItem)).all()
        # Every output rated once, as the queue stores it: counters, closed reservations, the simulated mark.
        assert len(ratings) == len(items) > 0 and all(r.simulated and not r.skipped for r in ratings)
        assert all(item.ratings_done == 1 and item.open_holds == 0 for item in items)
        assert set(session.scalars(select(Assignment.status))) == {"done"}
        assert session.scalar(select(func.count()).select_from(Rating).where(Rating.thumbs.is_(None))) == 0
        assert all(r.hallucinated_span for r in ratings if r.hallucination)
        dataset = session.scalars(select(PreferenceDataset)).one()
        assert dataset.strategy == "correction" and dataset.counts["train"] > 0
        assert session.scalars(select(RetuneJob.status)).one() == "succeeded"
    store.close()
