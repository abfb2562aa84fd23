"""Ratings out of the store as JSON Lines or CSV, streamed in batches (never the whole table in memory), and
read back, whatever version of evaltune wrote them.

One row per rating, with the prompt and the output(s) it judged. For A/B, ``choice`` is as the annotator
saw the sides, and ``preferred_generation_id`` says which output that means (None for tie and both bad).

Every row carries ``schema_version`` (a JSON field, a CSV column): the file is ours, read by pandas, jq or a
spreadsheet, and a per-row version survives files being concatenated or filtered. Versions:

1. no ``schema_version`` field and no ``thumbs`` (files written before either existed);
2. adds ``thumbs`` (True up, False down, empty when the annotator gave neither) and ``schema_version``;
3. adds ``spans``: the unsupported parts marked in the output, as ``[[start, end], ...]`` character offsets into
   ``output`` (end exclusive; in CSV the same list written as JSON), empty where none were marked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy import case, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.db.ratings import CampaignItem, Rating, User
from evaltune.feedback_ui.rating_task import prompt_text

FORMATS = ("jsonl", "csv")
SCHEMA_VERSION = 3
BATCH = 1000
_INTEGERS = {"schema_version", "rating_id", "campaign_id", "campaign_item_id", "generation_id", "run_id", "likert",
             "side_a_generation_id", "side_b_generation_id", "preferred_generation_id", "adjudicated_by"}
_FLAGS = {"skipped", "thumbs", "hallucination", "bias", "unsafe"}
COLUMNS = [
    "schema_version", "rating_id", "campaign_id", "campaign_item_id", "item_key", "annotator", "created_at",
    "skipped", "generation_id", "run_id", "likert", "thumbs", "hallucination", "hallucinated_span", "spans", "bias",
    "unsafe",
    "correction", "comment", "choice", "side_a_generation_id", "side_b_generation_id", "preferred_generation_id",
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
            Rating.generation_id, single.run_id, Rating.likert, Rating.thumbs, Rating.hallucination,
            Rating.hallucinated_span, Rating.spans,
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
        record = {"schema_version": SCHEMA_VERSION, **row}
        record["prompt"] = prompt_text(record["prompt"])
        record["created_at"] = record["created_at"].isoformat() if record["created_at"] else None
        yield record


def write_ratings(session: Session, out: IO[str], fmt: str, campaign_id: int | None = None) -> int:
    """Write ratings to an open text file in ``fmt`` (jsonl or csv); returns how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    records = iter_ratings(session, campaign_id)
    count = 0
    while batch := list(islice(records, BATCH)):
        if fmt == "csv":
            # dtype=object keeps each value as it is: a Likert of 4 stays "4", not "4.0" beside an empty one.
            frame = pd.DataFrame(batch, columns=COLUMNS, dtype=object)
            frame["spans"] = frame["spans"].map(lambda spans: json.dumps(spans) if spans else None)
            frame.to_csv(out, header=count == 0, index=False, lineterminator="\n")
        else:
            out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in batch)
        count += len(batch)
    if fmt == "csv" and count == 0:
        pd.DataFrame(columns=COLUMNS).to_csv(out, index=False, lineterminator="\n")
    return count


def export_ratings(session: Session, path: Path, fmt: str, campaign_id: int | None = None) -> int:
    """Write ratings to ``path`` (replaced only once complete); returns how many were written."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as out:
        count = write_ratings(session, out, fmt, campaign_id)
    partial.replace(path)
    return count


def read_ratings(path: Path) -> pd.DataFrame:
    """A ratings export (``.jsonl`` or ``.csv``, any schema version) as a table in today's ``COLUMNS``, with
    nullable integer and true/false columns (empty where the rating has no such answer).

    Rows of older versions are brought up to date: version 1 rows get ``thumbs`` empty. Raises ``ValueError``
    naming the file for another format, or rows written by a newer evaltune than this one."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(f"{path}: a ratings export is a .jsonl or .csv file (see 'evaltune ratings export')")
    if path.stat().st_size == 0:
        frame = pd.DataFrame()
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        for column in _FLAGS.intersection(frame.columns):
            frame[column] = frame[column].map({"True": True, "False": False})
        if "spans" in frame:
            frame["spans"] = frame["spans"].map(lambda text: json.loads(text) if isinstance(text, str) else None)
    else:
        frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    if "schema_version" in frame and frame["schema_version"].notna().any():
        newest = int(frame["schema_version"].dropna().astype(int).max())
        if newest > SCHEMA_VERSION:
            raise ValueError(f"{path}: written with ratings schema version {newest}, newer than this evaltune "
                             f"reads ({SCHEMA_VERSION}); upgrade evaltune to read it")
    frame["schema_version"] = SCHEMA_VERSION
    for column in COLUMNS:  # version 1 had no thumbs: unknown, which is not False; before 3, no spans
        if column not in frame:
            frame[column] = None
    for column in COLUMNS:
        if column in _FLAGS:
            frame[column] = frame[column].astype("boolean")
        elif column in _INTEGERS:
            frame[column] = frame[column].astype("Int64")
    return frame[COLUMNS]
