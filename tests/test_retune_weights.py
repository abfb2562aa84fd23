"""Agreement weights reach training: rows are drawn in proportion to their ``weight``, with replacement."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from evaltune.retune.config import DpoConfig, SftConfig
from evaltune.retune.train import row_weights, train, trainer_for

torch.set_num_threads(1)
SYSTEM = {"role": "system", "content": "Answer briefly."}
KEPT, FADED = range(0, 16), range(16, 32)  # rows of weight 1, and of weight ~0


def _row(number: int) -> dict[str, object]:
    return {"prompt": [SYSTEM, {"role": "user", "content": f"Who founded town {number}?"}],
            "completion": [{"role": "assistant", "content": "I don't know."}],
            "weight": 1.0 if number in KEPT else 1e-4}


def _drawn(trainer: object, epochs: int) -> Counter[int]:
    """How often each row (by its town number) is in the batches the trainer would train on, over ``epochs``."""
    loader = trainer.get_train_dataloader()  # type: ignore[attr-defined]
    tokenizer = trainer.processing_class  # type: ignore[attr-defined]
    drawn: Counter[int] = Counter()
    for epoch in range(epochs):
        loader.set_epoch(epoch)  # as the Trainer does before each epoch
        for batch in loader:
            for ids in batch["input_ids"]:
                drawn.update(int(n) for n in re.findall(r"town (\d+)\?", tokenizer.decode(ids)))
    return drawn


def test_rows_of_weight_near_zero_are_almost_never_drawn(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [_row(n) for n in [*KEPT, *FADED]]
    config = SftConfig(epochs=1, batch_size=8, seed=1)
    lines: list[str] = []
    trainer = trainer_for(str(tiny_model_dir), rows, config, tmp_path, log=lines.append)
    drawn = _drawn(trainer, epochs=6)
    assert sum(drawn.values()) == 6 * len(rows)  # each epoch draws as many rows as there are, with replacement
    assert set(drawn) == set(KEPT)  # every weight-1 row, no weight-1e-4 row (expected 0.002 draws in 192)
    assert min(drawn.values()) >= 3  # about 12 draws each
    assert lines == ["drawing rows in proportion to their weight (0.00 to 1.00), with replacement"]
    assert _drawn(trainer_for(str(tiny_model_dir), rows, config, tmp_path, log=lines.append), 6) == drawn

    result = train(str(tiny_model_dir), rows, config, tmp_path / "trained", log=lambda _: None)
    assert [entry["step"] for entry in result.history if "loss" in entry] == [1.0, 2.0, 3.0, 4.0]


def test_even_weights_shuffle_as_usual_and_bad_weights_are_refused_by_row(tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    rows = [{**_row(n), "weight": 0.5} for n in KEPT]
    assert row_weights(rows) is None  # the same weight everywhere: nothing to draw by
    trainer = trainer_for(str(tiny_model_dir), rows, SftConfig(), tmp_path, log=lambda _: None)
    assert "weight" not in trainer.train_dataset.column_names
    assert type(trainer).__name__ == "SFTTrainer"
    with pytest.raises(ValueError, match="training row 2: weight must be a number from 0 up, got -1"):
        row_weights([{"weight": 1}, {"weight": -1}])
    with pytest.raises(ValueError, match="every training row has weight 0"):
        row_weights([{"weight": 0}, {"weight": 0.0}])


def test_weighted_preference_pairs_keep_their_weights_through_trls_preparation(tiny_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    pairs = [{"prompt": [SYSTEM, {"role": "user", "content": f"Who founded town {n}?"}],
              "chosen": [{"role": "assistant", "content": "I don't know."}],
              "rejected": [{"role": "assistant", "content": f"King {n}."}], "weight": 0.5 + (n % 2) / 2}
             for n in range(16)]
    trainer = trainer_for(str(tiny_model_dir), pairs, DpoConfig(), tmp_path, log=lambda _: None)
    assert trainer.train_dataset["weight"] == [pair["weight"] for pair in pairs]
    assert type(trainer.get_train_dataloader().batch_sampler.sampler).__name__ == "EpochSeededWeightedSampler"
