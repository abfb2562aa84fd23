"""The roomy KV cache gives the same logits as transformers' own DynamicCache, step for step, while rows
leave the batch and after the reserved room runs out."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from evaltune.harness.backends.hf_cache import CACHE_ARG, RoomyLayer, cache_of, kept_rows, reserve


def _steps(model: torch.nn.Module, cache: object, tokens: torch.Tensor, drop_at: int, steps: int,
           keep: list[int]) -> list[torch.Tensor]:
    """Greedy steps from ``tokens``; at step ``drop_at`` the batch becomes the rows ``keep``."""
    rows, length = tokens.shape[0], cache.get_seq_length()  # type: ignore[attr-defined]
    mask = torch.ones(rows, length, dtype=torch.long)
    position = torch.full((rows, 1), length)
    chosen = tokens[:, -1]
    logits_seen = []
    for step in range(steps):
        if step == drop_at:
            index = torch.tensor(keep)
            cache.batch_select_indices(index)  # type: ignore[attr-defined]
            mask, position, chosen = mask[index], position[index], chosen[index]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=position,
                    use_cache=True, **{CACHE_ARG: cache})
        logits = out.logits[:, -1]
        logits_seen.append(logits.clone())
        chosen, position = logits.argmax(-1), position + 1
    return logits_seen


def test_kept_rows_fill_each_finished_place_from_the_end() -> None:
    assert kept_rows([False, True, False, False, True, False]) == [0, 5, 2, 3]
    assert kept_rows([True, True, False]) == [2]
    assert kept_rows([False, False]) == [0, 1]
    assert kept_rows([True]) == []


# [1, 2]: every kept row moves down (a copy of the cache); [2, 1]: row 2 takes row 0's place (copied in place).
@pytest.mark.parametrize("keep", [[1, 2], kept_rows([True, False, False])])
@torch.inference_mode()
def test_roomy_cache_matches_dynamic_cache(tiny_model_dir: Path, keep: list[int]) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokens = torch.randint(5, model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    prefilled = cache_of(model(input_ids=tokens, use_cache=True))
    plain, roomy = copy.deepcopy(prefilled), copy.deepcopy(prefilled)
    reserve(roomy, 3)  # fewer positions than the 6 steps below: the layer must grow when they run out
    assert all(isinstance(layer, RoomyLayer) for layer in roomy.layers)
    expected = _steps(model, plain, tokens, drop_at=2, steps=6, keep=keep)
    got = _steps(model, roomy, tokens, drop_at=2, steps=6, keep=keep)
    for want, have in zip(expected, got, strict=True):
        assert torch.equal(want, have)
    assert roomy.get_seq_length() == plain.get_seq_length() == 7 + 6
    assert all(layer.keys.shape == (2, *plain.layers[0].keys.shape[1:]) for layer in roomy.layers)
