"""Preference datasets in the store: built from a campaign's ratings, read back as TRL records, exported.

A campaign item an admin adjudicated is built from the adjudicator's decision, not from the raw votes.
Exported files are what TRL's own scripts accept: JSON Lines or Parquet with exactly the columns of
docs/dataset_formats.md: ``prompt``/``chosen``/``rejected`` (dpo), ``prompt``/``completion``/``label`` (kto) or
``prompt``/``completion`` (sft). Conversational rows (prompt as chat messages, answers as one assistant message)
when the rated prompt was chat messages. The export's schema version, method and columns are written beside
it (``NAME.meta.yaml``), not into it: TRL and ``datasets`` read every JSON field as a column and every line as
a row, so neither a field nor a header line could carry them. A JSON Lines file in those columns (an export of
any version, or rows made elsewhere) is imported with ``import_dataset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from evaltune import textfiles
from evaltune.db.evaluation import Generation, Suite, SuiteItem
from evaltune.db.ratings import Adjudication, Campaign, CampaignItem, Rating
from evaltune.db.training import PreferenceDataset, PreferenceRow
from evaltune.harness.prompts import training_prompt
from evaltune.harness.store_records import item_from_row, settings_from_row
from evaltune.retune.strategies import (
    RatingRecord,
    StrategyParams,
    build_rows,
    get_strategy,
    strategies,
    why_no_rows,
)
from evaltune.suggestions import did_you_mean

EXPORT_FORMATS = ("jsonl", "parquet")
# 1: the columns of docs/dataset_formats.md. A file with no metadata beside it (written before there was any)
# has the same columns, so it reads as version 1.
SCHEMA_VERSION = 1
# The answers the strategies read; an adjudicator's decision on any of them replaces the annotators' answers.
DECIDED = ("likert", "thumbs", "hallucination", "choice")
METHOD_COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label"),
                  "sft": ("prompt", "completion")}
ROLES = ("system", "user", "assistant")


class DatasetFileError(ValueError):
    """A dataset file cannot be imported; the message names the file, the line and the column, and the fix."""


def prompt_for(rendered: str, item: SuiteItem, suite: Suite, chat: bool | None = None) -> Any:
    """The prompt as the model saw it (``harness.prompts.training_prompt``, the runner's own rendering): the text
    it read, or the chat messages its chat template turned into that text. ``chat`` forces one form."""
    return training_prompt(rendered, item_from_row(item), settings_from_row(suite), chat)


def load_records(session: Session, campaign_id: int, chat: bool | None = None) -> list[RatingRecord]:
    """Every answered (not skipped) rating of the campaign, with the outputs it judged. On an adjudicated item
    each rating carries the adjudicator's decision instead of its own answer to the questions decided, so the
    item's ratings agree on the decision."""
    settled = decisions(session, campaign_id)
    side_a, side_b = aliased(Generation), aliased(Generation)
    shown = aliased(Generation)
    query = (
        select(Rating, SuiteItem, Suite, shown, side_a.output, side_b.output)
        .join(CampaignItem, Rating.campaign_item_id == CampaignItem.id)
        .join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
        .join(Suite, Suite.id == SuiteItem.suite_id)
        .join(shown, shown.id == CampaignItem.generation_id)
        .outerjoin(side_a, side_a.id == Rating.side_a_generation_id)
        .outerjoin(side_b, side_b.id == Rating.side_b_generation_id)
        .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False))
        .order_by(Rating.id)
    )
    records = []
    for rating, item, suite, generation, a_output, b_output in session.execute(query):
        records.append(RatingRecord(
            rating_id=rating.id, item_id=item.id, prompt=prompt_for(generation.prompt, item, suite, chat),
            output=generation.output, generation_id=generation.id, correction=rating.correction,
            side_a=a_output, side_b=b_output, **_answers(rating, generation.id, settled.get(rating.campaign_item_id)),
        ))
    return records


def decisions(session: Session, campaign_id: int) -> dict[int, dict[str, Any]]:
    """Adjudicated campaign items of the campaign -> the part of the decision the strategies read."""
    found = session.execute(
        select(Adjudication.campaign_item_id, Adjudication.decision)
        .join(CampaignItem, CampaignItem.id == Adjudication.campaign_item_id)
        .where(CampaignItem.campaign_id == campaign_id)
    )
    settled = {item_id: {q: v for q, v in (decision or {}).items() if q in DECIDED} for item_id, decision in found}
    return {item_id: decision for item_id, decision in settled.items() if decision}


def _answers(rating: Rating, first_generation_id: int, decision: dict[str, Any] | None) -> dict[str, Any]:
    """The rating's answers to ``DECIDED``, with the adjudicator's decision in place of its own where there is one.

    A decided A/B choice names the item's ``first``/``second`` output; it becomes the side this annotator saw
    that output on."""
    answers = {question: getattr(rating, question) for question in DECIDED}
    for question, value in (decision or {}).items():
        if question == "choice" and value in ("first", "second"):
            first_on_a = rating.side_a_generation_id == first_generation_id
            value = "a" if (value == "first") == first_on_a else "b"
        answers[question] = value
    return answers


class EmptyDatasetError(ValueError):
    """The ratings give no training row by the strategy asked for; the message says which were dropped and why,
    and which strategies would make rows from them."""


def build_dataset(
    session: Session, campaign_id: int, strategy: str, params: StrategyParams, name: str = "",
    chat: bool | None = None, allow_empty: bool = False,
) -> PreferenceDataset:
    """Derive rows from the campaign's ratings by ``strategy`` and store them as a new dataset (not committed).

    The dataset records the strategy, its parameters and the counts (kept, dropped and why, train/holdout,
    and ``adjudicated_items``: items whose rows follow an adjudicator's decision rather than the votes).
    Raises ``EmptyDatasetError``, storing nothing, when no row would be left to train on, unless
    ``allow_empty``."""
    if session.get(Campaign, campaign_id) is None:
        raise LookupError(f"no campaign {campaign_id} in the store; see 'evaltune campaigns list'")
    method = get_strategy(strategy).method
    records = load_records(session, campaign_id, chat)
    rows, counts = build_rows(records, strategy, params)
    if not counts["train"] and not allow_empty:
        raise EmptyDatasetError(_why_empty(campaign_id, strategy, params, records, counts))
    counts["adjudicated_items"] = _adjudicated_items(session, campaign_id)
    dataset = PreferenceDataset(
        name=name or f"campaign {campaign_id} {strategy}", strategy=strategy, campaign_id=campaign_id,
        params={**params.__dict__, "method": method}, counts=counts,
    )
    session.add(dataset)
    session.flush()
    session.add_all(
        PreferenceRow(dataset_id=dataset.id, split=row.split, item_id=row.item_id, prompt=row.prompt,
                      chosen=row.chosen, rejected=row.rejected, completion=row.completion, label=row.label,
                      weight=row.weight, rating_ids=row.rating_ids)
        for row in rows
    )
    session.flush()
    return dataset


def _why_empty(campaign_id: int, strategy: str, params: StrategyParams, records: Sequence[RatingRecord],
               counts: dict[str, int]) -> str:
    """One sentence: why ``strategy`` made no training row from the campaign's ratings, and what would."""
    if not records:
        return (f"campaign {campaign_id} has no answered ratings yet, so strategy {strategy} has nothing to build "
                "rows from; rate its items in the app ('evaltune ui') first")
    if counts["holdout"]:
        reasons = [f"all {counts['holdout']} of its rows fell in the held-out share (holdout {params.holdout:g})"]
    else:
        reasons = why_no_rows(counts) or ["none of them holds an answer it reads"]
    others = [f"{name} makes {made}" for name in strategies() if name != strategy
              for made in [build_rows(records, name, params)[1]["train"]] if made]
    if others:
        fix = f"from these ratings strategy {', '.join(others)} training rows"
    elif counts["holdout"]:
        fix = "lower holdout, or rate more items"
    else:
        fix = f"rate more items, giving the answers strategy {strategy} reads (see 'evaltune data build --help')"
    return (f"strategy {strategy} made no training rows from the {len(records)} ratings of campaign {campaign_id}: "
            f"{', '.join(reasons)}; {fix}")


@dataclass(frozen=True)
class DatasetSummary:
    """A stored dataset as listings show it: what it was built from and for, and its rows per split."""

    id: int
    name: str
    strategy: str
    method: str
    campaign_id: int | None
    train_rows: int
    holdout_rows: int
    created_at: datetime


def dataset_summaries(session: Session, dataset_ids: Sequence[int] | None = None) -> list[DatasetSummary]:
    """Every dataset (or those of ``dataset_ids``), newest first, with its rows counted in the store."""
    per_split = select(PreferenceRow.dataset_id, PreferenceRow.split, func.count()).group_by(
        PreferenceRow.dataset_id, PreferenceRow.split)
    query = select(PreferenceDataset).order_by(PreferenceDataset.id.desc())
    if dataset_ids is not None:
        per_split = per_split.where(PreferenceRow.dataset_id.in_(dataset_ids))
        query = query.where(PreferenceDataset.id.in_(dataset_ids))
    rows = {(dataset_id, split): int(n) for dataset_id, split, n in session.execute(per_split)}
    return [DatasetSummary(d.id, d.name, d.strategy, dataset_method(d), d.campaign_id, rows.get((d.id, "train"), 0),
                           rows.get((d.id, "holdout"), 0), d.created_at) for d in session.scalars(query)]


def _adjudicated_items(session: Session, campaign_id: int) -> int:
    """How many rated items of the campaign carry an adjudicator's decision on what the strategies read."""
    settled = decisions(session, campaign_id)
    rated = session.scalars(
        select(Rating.campaign_item_id).distinct()
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(CampaignItem.campaign_id == campaign_id, Rating.skipped.is_(False))
    )
    return sum(item_id in settled for item_id in rated)


def dataset_method(dataset: PreferenceDataset) -> str:
    """The training method the dataset's rows are shaped for: dpo, kto or sft."""
    method = (dataset.params or {}).get("method")
    if method in METHOD_COLUMNS:
        return method
    registered = strategies().get(dataset.strategy)
    return registered.method if registered else "dpo"


def _answer(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def trl_record(row: PreferenceRow, method: str, weight: bool = False) -> dict[str, Any]:
    """One row in TRL's columns for ``method`` (dpo, kto, sft); with ``weight``, also the row's sampling weight
    (its raters' agreement under ``--weight-by-agreement``, else 1), which ``retune.train`` draws rows by."""
    conversational = isinstance(row.prompt, list)
    record: dict[str, Any] = {"prompt": row.prompt}
    if method == "dpo":
        record["chosen"] = _answer(row.chosen or "", conversational)
        record["rejected"] = _answer(row.rejected or "", conversational)
    elif method == "kto":
        record["completion"] = _answer(row.completion or "", conversational)
        record["label"] = bool(row.label)
    else:
        record["completion"] = _answer(row.completion or row.chosen or "", conversational)
    if weight:
        record["weight"] = 1.0 if row.weight is None else float(row.weight)
    return record


def dataset_records(session: Session, dataset_id: int, split: str = "train",
                    weights: bool = False) -> list[dict[str, Any]]:
    """The dataset's rows of one split (``train``, ``holdout`` or ``all``) as TRL records; with ``weights``, each
    with its ``weight`` column for training (exports leave it out: TRL's own scripts do not read it)."""
    dataset = session.get(PreferenceDataset, dataset_id)
    if dataset is None:
        raise LookupError(f"no dataset {dataset_id} in the store; see 'evaltune data build'")
    query = select(PreferenceRow).where(PreferenceRow.dataset_id == dataset_id).order_by(PreferenceRow.id)
    if split != "all":
        query = query.where(PreferenceRow.split == split)
    method = dataset_method(dataset)
    return [trl_record(row, method, weights) for row in session.scalars(query)]


def export_records(records: Sequence[dict[str, Any]], path: Path, fmt: str, method: str | None = None) -> Path:
    """Write the records as JSON Lines or Parquet (what ``datasets.load_dataset`` and TRL's scripts read), and
    their metadata beside them (``metadata_path``). Every record must have exactly the columns of ``method``
    (default: the method the first record's columns show); raises ``ValueError`` naming the first that does not."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose jsonl or parquet")
    method = method or (_method_of(records[0]) if records else "dpo")
    columns = list(METHOD_COLUMNS[method])
    for number, record in enumerate(records, start=1):
        if list(record) != columns:
            raise ValueError(f"row {number} has the columns {', '.join(record)}; a {method} export has exactly "
                             f"{', '.join(columns)} (see docs/dataset_formats.md)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if fmt == "jsonl":
        with partial.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    else:
        pd.DataFrame(list(records), columns=columns).to_parquet(partial, index=False)
    partial.replace(path)
    conversational = bool(records) and isinstance(records[0]["prompt"], list)
    metadata = {"schema_version": SCHEMA_VERSION, "written_by": "evaltune", "method": method, "columns": columns,
                "form": "conversational" if conversational else "standard", "rows": len(records)}
    metadata_path(path).write_text(yaml.safe_dump(metadata, sort_keys=False, default_flow_style=None),
                                   encoding="utf-8")
    return path


def metadata_path(path: Path) -> Path:
    """Where the metadata of the export ``path`` lies: ``NAME.meta.yaml`` beside ``NAME.jsonl``/``NAME.parquet``.

    ``datasets`` (and so TRL) loads a folder's files whose name holds a data extension anywhere (``x.jsonl.gz``),
    so the name leaves the export's extension out: a folder holding both still loads as the export alone."""
    return path.with_suffix(".meta.yaml")


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata beside the export ``path``; an export without any (written before it existed) is version 1.
    Raises ``DatasetFileError`` for unreadable metadata or a version newer than this evaltune reads."""
    where = metadata_path(path)
    if not where.is_file():
        return {"schema_version": 1}
    try:
        metadata = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetFileError(f"{where}: cannot read the export's metadata ({error}); fix or delete it") from None
    version = metadata.get("schema_version") if isinstance(metadata, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DatasetFileError(f"{where}: 'schema_version' must be a whole number from 1; fix or delete the file")
    if version > SCHEMA_VERSION:
        raise DatasetFileError(f"{where}: written with dataset schema version {version}, newer than this evaltune "
                               f"reads ({SCHEMA_VERSION}); upgrade evaltune to import it")
    return dict(metadata)


def import_dataset(session: Session, path: Path, method: str | None = None, name: str = "") -> PreferenceDataset:
    """Store the rows of a JSON Lines file in TRL's columns as a new dataset (not committed); every row is
    checked before anything is added. ``method`` defaults to the one the export's metadata names, else to the
    one the first row's columns show."""
    method, records = read_dataset_file(path, method)
    version = read_metadata(path)["schema_version"]
    dataset = PreferenceDataset(name=name or f"imported {path.name}", strategy="import", campaign_id=None,
                                params={"method": method, "source": str(path), "schema_version": version},
                                counts={"rows": len(records), "train": len(records), "holdout": 0})
    session.add(dataset)
    session.flush()
    session.add_all(PreferenceRow(dataset_id=dataset.id, split="train", item_id=None, rating_ids=[], **record)
                    for record in records)
    session.flush()
    return dataset


def read_dataset_file(path: Path, method: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(method, rows as stored) from a JSON Lines file in TRL's columns. Raises ``DatasetFileError`` naming the
    file, the line and the column of the first problem."""
    if path.suffix.lower() != ".jsonl":
        raise DatasetFileError(f"{path}: only JSON Lines (.jsonl) files can be imported; "
                               "export with --format jsonl or convert it")
    lines = _json_lines(path)
    if not lines:
        raise DatasetFileError(f"{path}: the file holds no rows; write one JSON object per line")
    method = method or read_metadata(path).get("method") or _method_of(lines[0][1])
    if method not in METHOD_COLUMNS:
        raise DatasetFileError(f"{metadata_path(path)}: unknown method {method!r}; use one of "
                               f"{', '.join(METHOD_COLUMNS)}")
    return method, [_stored_row(path, number, data, method) for number, data in lines]


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    try:
        return textfiles.json_lines(textfiles.read_text(path), str(path))
    except textfiles.FileProblem as problem:
        raise DatasetFileError(str(problem)) from None


def _method_of(first: Any) -> str:
    columns = set(first) if isinstance(first, dict) else set()
    if columns & {"chosen", "rejected"}:
        return "dpo"
    return "kto" if "label" in columns else "sft"


def _stored_row(path: Path, number: int, data: Any, method: str) -> dict[str, Any]:
    columns = METHOD_COLUMNS[method]
    where = f"{path}:{number}"
    shape = f"a {method} file has the columns {', '.join(columns)}"
    if not isinstance(data, dict):
        raise DatasetFileError(f"{where}: expected a JSON object with {', '.join(columns)}, got {_kind(data)}")
    for column in data:
        if column not in columns:
            raise DatasetFileError(f"{where}: unknown column '{column}'{did_you_mean(str(column), columns)}; {shape}")
    for column in columns:
        if column not in data:
            raise DatasetFileError(f"{where}: column '{column}' is missing; {shape}")
    prompt = _prompt(f"{where}: column 'prompt'", data["prompt"])
    row: dict[str, Any] = {"prompt": prompt}
    for column in columns[1:]:
        if column == "label":
            row["label"] = _label(f"{where}: column 'label'", data["label"])
        else:
            row[column] = _answer_text(f"{where}: column '{column}'", data[column], isinstance(prompt, list))
    if method == "dpo" and row["chosen"] == row["rejected"]:
        raise DatasetFileError(f"{where}: column 'rejected' is the same text as 'chosen'; "
                               "a preference pair needs two different answers")
    return row


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _prompt(where: str, value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise DatasetFileError(f"{where}: expected non-empty text or a list of {{\"role\", \"content\"}} messages "
                           f"(roles: {', '.join(ROLES)}), got {_kind(value)}")


def _is_message(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"role", "content"} and value["role"] in ROLES
            and isinstance(value["content"], str))


def _answer_text(where: str, value: Any, conversational: bool) -> str:
    if conversational and isinstance(value, list) and len(value) == 1 and _is_message(value[0]) \
            and value[0]["role"] == "assistant":
        value = value[0]["content"]
    if isinstance(value, str) and value.strip():
        return value
    expected = "non-empty text" + (' or [{"role": "assistant", "content": "..."}]' if conversational else "")
    raise DatasetFileError(f"{where}: expected {expected}, got {_kind(value)}")


def _label(where: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise DatasetFileError(f"{where}: expected true or false (JSON booleans, unquoted), got {json.dumps(value)[:40]}")
