"""Ratings out of the store as JSON Lines or CSV, streamed in batches (never the whole table in memory).

One row per rating, with the prompt and the output(s) it judged. For A/B, ``choice`` is as the annotator
saw the sides, and ``preferred_generation_id`` says which output that means (None for tie and both bad).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.db.ratings import CampaignItem, Rating, User
from evaltune.feedback_ui.rating_task import prompt_text

FORMATS = ("jsonl", "csv")
BATCH = 1000
COLUMNS = [
    "rating_id", "campaign_id", "campaign_item_id", "item_key", "annotator", "created_at", "skipped",
    "generation_id", "run_id", "likert", "hallucination", "hallucinated_span", "bias", "unsafe", "correction",
    "comment", "choice", "side_a_generation_id", "side_b_generation_id", "preferred_generation_id",
    "adjudicated_by", "prompt", "output", "output_a", "output_b",
]


def _query(campaign_id: int | None) -> Any:
    single, side_a, side_b = aliased(Generation), aliased(Generation), aliased(Generation)
    preferred = case((Rating.choice == "a", Rating.side_a_generation_id),
                     (Rating.choice == "b", Rating.side_b_generation_id))
    stmt = (
        select(
            Rating.id.label("rating_id"), CampaignItem.campaign_id, Rating.campaign_item_id,
            SuiteItem.key.label("item_key"), User.name.label("annotator"), Rating.created_at, Rating.skipped,
            Rating.generation_id, single.run_id, Rating.likert, Rating.hallucination, Rating.hallucinated_span,
            Rating.bias, Rating.unsafe, Rating.correction, Rating.comment, Rating.choice,
            Rating.side_a_generation_id, Rating.side_b_generation_id, preferred.label("preferred_generation_id"),
            Rating.adjudicated_by, SuiteItem.input.label("prompt"), single.output.label("output"),
            side_a.output.label("output_a"), side_b.output.label("output_b"),
        )
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
        .join(User, User.id == Rating.user_id)
        .outerjoin(single, single.id == Rating.generation_id)
        .outerjoin(side_a, side_a.id == Rating.side_a_generation_id)
        .outerjoin(side_b, side_b.id == Rating.side_b_generation_id)
        .order_by(Rating.id)
    )
    if campaign_id is not None:
        stmt = stmt.where(CampaignItem.campaign_id == campaign_id)
    return stmt


def iter_ratings(session: Session, campaign_id: int | None = None) -> Iterator[dict[str, Any]]:
    """Every rating (of one campaign, or all), oldest first, as plain dicts with ``COLUMNS`` as keys."""
    result = session.execute(_query(campaign_id).execution_options(yield_per=BATCH))
    for row in result.mappings():
        record = dict(row)
        record["prompt"] = prompt_text(record["prompt"])
        record["created_at"] = record["created_at"].isoformat() if record["created_at"] else None
        yield record


def write_ratings(session: Session, out: IO[str], fmt: str, campaign_id: int | None = None) -> int:
    """Write ratings to an open text file in ``fmt`` (jsonl or csv); returns how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for record in iter_ratings(session, campaign_id):
        if writer:
            writer.writerow(record)
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def export_ratings(session: Session, path: Path, fmt: str, campaign_id: int | None = None) -> int:
    """Write ratings to ``path`` (replaced only once complete); returns how many were written."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as out:
        count = write_ratings(session, out, fmt, campaign_id)
    partial.replace(path)
    return count
