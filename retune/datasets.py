"""Preference datasets in the store: built from a campaign's ratings, read back as TRL records, exported.

Exported files are what TRL's own scripts accept: JSON Lines or Parquet with the columns ``prompt``/``chosen``/
``rejected`` (dpo), ``prompt``/``completion``/``label`` (kto) or ``prompt``/``completion`` (sft). Conversational
rows (prompt as chat messages, answers as one assistant message) when the rated prompt was chat messages.
A JSON Lines file in those columns (an export, or rows made elsewhere) is imported with ``import_dataset``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import Generation, Suite, SuiteItem
from evaltune.db.ratings import Campaign, CampaignItem, Rating
from evaltune.db.training import PreferenceDataset, PreferenceRow
from evaltune.retune.strategies import METHOD_OF_STRATEGY, RatingRecord, StrategyParams, build_rows

EXPORT_FORMATS = ("jsonl", "parquet")
METHOD_COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label"),
                  "sft": ("prompt", "completion")}
ROLES = ("system", "user", "assistant")


class DatasetFileError(ValueError):
    """A dataset file cannot be imported; the message names the file, the line and the column, and the fix."""


def _compose(item: SuiteItem) -> Any:
    """The item's input with its context in front, as the runner composes it (harness.work.compose_input)."""
    value = item.input
    if not item.context:
        return value
    if isinstance(value, str):
        return value if item.context in value else f"Context:\n{item.context}\n\nQuestion: {value}"
    messages = [dict(m) for m in value]
    if not any(item.context in str(m.get("content", "")) for m in messages):
        messages[0]["content"] = f"Context:\n{item.context}\n\n{messages[0]['content']}"
    return messages


def prompt_for(rendered: str, item: SuiteItem, suite: Suite, chat: bool | None = None) -> Any:
    """The prompt as the model saw it: chat messages (with the suite's system prompt) when the model was
    prompted through a chat template, else the text. ``chat=None`` follows the suite's ``chat`` setting."""
    try:
        stored = json.loads(rendered)
    except ValueError:
        stored = None
    if isinstance(stored, list) and all(isinstance(m, dict) and "role" in m for m in stored):
        return [{"role": m["role"], "content": m["content"]} for m in stored]  # an endpoint's chat messages
    settings = suite.generation or {}
    system = settings.get("system_prompt")
    composed = _compose(item)
    if chat is None:
        chat = settings.get("chat", "auto") != "never" or not isinstance(composed, str)
    if not chat:
        return f"{system}\n\n{composed}" if system else composed
    messages = [{"role": "user", "content": composed}] if isinstance(composed, str) else list(composed)
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def load_records(session: Session, campaign_id: int, chat: bool | None = None) -> list[RatingRecord]:
    """Every answered (not skipped) rating of the campaign, with the outputs it judged."""
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
            output=generation.output, generation_id=generation.id, likert=rating.likert, thumbs=rating.thumbs,
            hallucination=rating.hallucination, correction=rating.correction, choice=rating.choice,
            side_a=a_output, side_b=b_output,
        ))
    return records


def build_dataset(
    session: Session, campaign_id: int, strategy: str, params: StrategyParams, name: str = "",
    chat: bool | None = None,
) -> PreferenceDataset:
    """Derive rows from the campaign's ratings by ``strategy`` and store them as a new dataset (not committed).

    The dataset records the strategy, its parameters and the counts (kept, dropped and why, train/holdout)."""
    if session.get(Campaign, campaign_id) is None:
        raise LookupError(f"no campaign {campaign_id} in the store; see 'evaltune campaigns list'")
    rows, counts = build_rows(load_records(session, campaign_id, chat), strategy, params)
    dataset = PreferenceDataset(
        name=name or f"campaign {campaign_id} {strategy}", strategy=strategy, campaign_id=campaign_id,
        params={**params.__dict__, "method": METHOD_OF_STRATEGY[strategy]}, counts=counts,
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


def dataset_method(dataset: PreferenceDataset) -> str:
    """The training method the dataset's rows are shaped for: dpo, kto or sft."""
    method = (dataset.params or {}).get("method")
    return method if method in METHOD_COLUMNS else METHOD_OF_STRATEGY.get(dataset.strategy, "dpo")


def _answer(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def trl_record(row: PreferenceRow, method: str) -> dict[str, Any]:
    """One row in TRL's columns for ``method`` (dpo, kto, sft)."""
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
    return record


def dataset_records(session: Session, dataset_id: int, split: str = "train") -> list[dict[str, Any]]:
    """The dataset's rows of one split (``train``, ``holdout`` or ``all``) as TRL records."""
    dataset = session.get(PreferenceDataset, dataset_id)
    if dataset is None:
        raise LookupError(f"no dataset {dataset_id} in the store; see 'evaltune data build'")
    query = select(PreferenceRow).where(PreferenceRow.dataset_id == dataset_id).order_by(PreferenceRow.id)
    if split != "all":
        query = query.where(PreferenceRow.split == split)
    method = dataset_method(dataset)
    return [trl_record(row, method) for row in session.scalars(query)]


def export_records(records: Sequence[dict[str, Any]], path: Path, fmt: str) -> Path:
    """Write the records as JSON Lines or Parquet (what ``datasets.load_dataset`` and TRL's scripts read)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose jsonl or parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path
    from datasets import Dataset

    Dataset.from_list(list(records)).to_parquet(str(path))
    return path


def import_dataset(session: Session, path: Path, method: str | None = None, name: str = "") -> PreferenceDataset:
    """Store the rows of a JSON Lines file in TRL's columns as a new dataset (not committed); every row is
    checked before anything is added. ``method`` defaults to the one the first row's columns show."""
    method, records = read_dataset_file(path, method)
    dataset = PreferenceDataset(name=name or f"imported {path.name}", strategy="import", campaign_id=None,
                                params={"method": method, "source": str(path)},
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
    method = method or _method_of(lines[0][1])
    return method, [_stored_row(path, number, data, method) for number, data in lines]


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetFileError(f"{path}: cannot read the file ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad_line = raw[: error.start].count(b"\n") + 1
        raise DatasetFileError(f"{path}: line {bad_line}: not valid UTF-8; save the file as UTF-8") from None
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DatasetFileError(f"{path}: line {number}: not valid JSON ({error.msg} at column {error.colno}); "
                                   "write one JSON object per line") from None
    return lines


def _method_of(first: Any) -> str:
    columns = set(first) if isinstance(first, dict) else set()
    if columns & {"chosen", "rejected"}:
        return "dpo"
    return "kto" if "label" in columns else "sft"


def _stored_row(path: Path, number: int, data: Any, method: str) -> dict[str, Any]:
    columns = METHOD_COLUMNS[method]
    where = f"{path}: line {number}"
    shape = f"a {method} file has the columns {', '.join(columns)}"
    if not isinstance(data, dict):
        raise DatasetFileError(f"{where}: expected a JSON object with {', '.join(columns)}, got {_kind(data)}")
    for column in data:
        if column not in columns:
            close = difflib.get_close_matches(str(column), columns, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DatasetFileError(f"{where}: unknown column '{column}'{hint}; {shape}")
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
