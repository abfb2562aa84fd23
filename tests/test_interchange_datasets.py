"""Ratings and training data as Hugging Face datasets: Parquet that ``datasets.load_dataset`` reads back equal to
the rows; a push to the hub from an offline machine is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.db.engine import Store
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.export import iter_ratings
from evaltune.retune.datasets import dataset_records
from tests.conftest import Cli
from tests.fixtures.feedback_seed import rate_campaign, seed_store
from tests.fixtures.retune_seed import write_dpo_rows


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_ratings_as_parquet_load_back_equal(store: Store, cli: Cli, tmp_path: Path) -> None:
    import datasets

    seeded = seed_store(store, items=4)
    assert cli("campaigns", "create", "--runs", "1", "--overlap", "1")[0] == 0
    with store.session_scope() as session:
        rate_campaign(session, seeded.users["ann1"], 1,
                      lambda task: SingleAnswer(likert=2, hallucination=True, hallucinated_span="Capital",
                                                correction="Capital.") if "0" in task.item_key else
                      SingleAnswer(likert=5, hallucination=False))
    code, out, err = cli("ratings", "to-dataset", "--campaign", "1", "-o", str(tmp_path / "ratings"))
    assert code == 0, err
    assert f"wrote {tmp_path / 'ratings' / 'train.parquet'} (4 rows)" in out
    loaded = datasets.load_dataset("parquet", data_files={"train": str(tmp_path / "ratings" / "train.parquet")})
    with store.sessions() as session:
        expected = list(iter_ratings(session, 1))
    assert loaded["train"].to_list() == expected
    assert datasets.load_dataset(str(tmp_path / "ratings"))["train"].num_rows == 4  # the folder, with its card
    assert "# Ratings of evaltune campaign 1" in (tmp_path / "ratings" / "README.md").read_text()


def test_a_training_dataset_as_parquet_and_the_hub_offline(store: Store, cli: Cli, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", count=12)))[0] == 0
    folder = tmp_path / "pairs"
    code, _out, err = cli("data", "to-dataset", "1", "-o", str(folder))
    assert code == 0, err
    loaded = datasets.load_dataset("parquet", data_files={"train": str(folder / "train.parquet")})["train"]
    with store.sessions() as session:
        assert loaded.to_list() == dataset_records(session, 1, "train")
    assert loaded.column_names == ["prompt", "chosen", "rejected"]  # TRL's columns, as TRL's scripts read them

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _out, err = cli("data", "to-dataset", "1", "-o", str(tmp_path / "elsewhere"), "--push-to-hub", "me/pairs")
    assert code == 2 and "--push-to-hub me/pairs: the Hugging Face hub is offline here" in err
    assert not (tmp_path / "elsewhere").exists()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("EVALTUNE_ONLINE", raising=False)
    code, _out, err = cli("data", "to-dataset", "1", "-o", str(tmp_path / "elsewhere"), "--push-to-hub", "me/pairs")
    assert code == 2 and "evaltune is offline (set EVALTUNE_ONLINE=1" in err
