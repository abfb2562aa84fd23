"""Ratings and training datasets as Hugging Face ``datasets``: Parquet files in a folder that
``datasets.load_dataset(FOLDER)`` (or ``load_dataset("parquet", data_files=...)``) reads, or pushed to the hub.

A folder holds one Parquet file per split (``train.parquet``; a training dataset's held-out rows as
``test.parquet``, the split name ``datasets`` recognises) and a ``README.md`` dataset card saying what the rows are.
Rating rows have the columns of ``evaltune ratings export`` (``feedback_ui.export``); training rows TRL's columns.
Pushing needs the hub: ``EVALTUNE_ONLINE=1``, no ``HF_HUB_OFFLINE``, and a token (``hf auth login`` or ``HF_TOKEN``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from evaltune import settings
from evaltune.interchange.campaign_io import ExchangeError, campaign_or_error


def ratings_splits(session: Session, campaign_id: int) -> dict[str, list[dict[str, Any]]]:
    """The campaign's ratings as one ``train`` split of rows (skips included, marked ``skipped``)."""
    from evaltune.feedback_ui.export import iter_ratings

    campaign_or_error(session, campaign_id)
    return {"train": list(iter_ratings(session, campaign_id))}


def training_splits(session: Session, dataset_id: int) -> dict[str, list[dict[str, Any]]]:
    """A stored training dataset's rows in TRL's columns: ``train``, and ``test`` for its held-out rows."""
    from evaltune.retune.datasets import dataset_records

    try:
        splits = {"train": dataset_records(session, dataset_id, "train"),
                  "test": dataset_records(session, dataset_id, "holdout")}
    except LookupError as error:
        raise ExchangeError(str(error.args[0])) from None
    return {name: rows for name, rows in splits.items() if rows or name == "train"}


def as_dataset_dict(splits: dict[str, list[dict[str, Any]]]) -> Any:
    """The splits as a ``datasets.DatasetDict`` (column types inferred by Arrow from the rows)."""
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def write_parquet(splits: dict[str, list[dict[str, Any]]], folder: Path, card: str) -> list[Path]:
    """Write each split to ``folder/SPLIT.parquet`` and the dataset card; returns the Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dataset in as_dataset_dict(splits).items():
        path = folder / f"{name}.parquet"
        partial = folder / f".{name}.parquet.partial"  # a dot name: load_dataset(folder) never reads it
        dataset.to_parquet(str(partial))
        partial.replace(path)
        written.append(path)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return written


def hub_problem() -> str | None:
    """Why a push to the hub cannot work from here, or None."""
    if settings.hub_offline():
        return "the Hugging Face hub is offline here (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set)"
    if not settings.online():
        return "evaltune is offline (set EVALTUNE_ONLINE=1 on a machine that reaches huggingface.co)"
    return None


def push(splits: dict[str, list[dict[str, Any]]], repo: str, private: bool = True) -> str:
    """Push the splits to the hub dataset ``repo`` (private unless told); returns the dataset's address."""
    problem = hub_problem()
    if problem:
        raise ExchangeError(f"--push-to-hub {repo}: {problem}; the Parquet files in -o are written anyway")
    try:
        as_dataset_dict(splits).push_to_hub(repo, private=private)
    except Exception as error:  # the hub's own errors: no token, no permission, no network
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExchangeError(f"--push-to-hub {repo}: the hub refused it ({first}); check 'hf auth whoami' and the "
                            "repository name (OWNER/NAME)") from None
    return f"https://huggingface.co/datasets/{repo}"


def card(title: str, description: str, splits: dict[str, list[dict[str, Any]]]) -> str:
    """A short dataset card: what the rows are, how many, and how to load them."""
    counts = ", ".join(f"{name}: {len(rows)} rows" for name, rows in splits.items())
    columns = ", ".join(next((list(rows[0]) for rows in splits.values() if rows), []))
    return ("---\nconfigs:\n- config_name: default\n  data_files:\n"
            + "".join(f"  - split: {name}\n    path: {name}.parquet\n" for name in splits)
            + f"---\n\n# {title}\n\n{description}\n\nSplits: {counts}.\n\nColumns: {columns}.\n\n"
            "Written by evaltune. Load with `datasets.load_dataset(\"parquet\", data_files={\"train\": "
            "\"train.parquet\"})` or `load_dataset(FOLDER)`.\n")
