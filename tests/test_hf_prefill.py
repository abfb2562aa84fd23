"""Prefill in groups of similar length: the same next-token logits and the same continuations as one padded pass
over the whole batch, with the shared prefix computed once, and a cache the decoder can keep writing into."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from evaltune.harness.backends import hf_prefill
from evaltune.harness.backends.hf_cache import RoomyLayer, cache_of
from evaltune.harness.backends.hf_decode import DecodeLimits, decode


def test_rows_are_grouped_by_length_where_padding_costs_more_than_a_pass() -> None:
    assert hf_prefill.length_groups([5, 100, 4, 98, 6, 99], 32) == [[1, 5, 3], [4, 0, 2]]
    assert hf_prefill.length_groups([5, 100, 4, 98, 6, 99], 500) == [[1, 5, 3, 4, 0, 2]]
    assert hf_prefill.length_groups([10, 12, 11, 9], 32) == [[1, 2, 0, 3]]  # padding 6 tokens: not worth a pass
    assert hf_prefill.length_groups([7], 32) == [[0]]


def test_a_pass_of_a_bigger_model_costs_fewer_tokens(tiny_model_dir: Path) -> None:
    """A pass of a tiny model is nearly all kernel launches, so it is worth many tokens of padding."""
    tiny = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert hf_prefill.pass_cost_tokens(tiny) > 100


def _prompts(vocab: int, shared: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    prefix = torch.randint(5, vocab, (shared,), generator=generator).tolist()
    return [prefix + torch.randint(5, vocab, (n,), generator=generator).tolist() for n in (60, 3, 57, 2, 4, 59)]


@pytest.mark.parametrize("shared", [0, 20])
@torch.inference_mode()
def test_grouped_prefill_matches_one_padded_pass(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 shared: int) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = _prompts(model.config.vocab_size, shared)
    monkeypatch.setattr(hf_prefill, "PASS_COST_TOKENS", 10**9)  # one pass: every row at the longest row's width
    whole, whole_mask = hf_prefill.prefill(model, prompts, 0)
    monkeypatch.setattr(hf_prefill, "PASS_COST_TOKENS", 8)
    assert len(hf_prefill.length_groups([len(p) - shared for p in prompts], 8)) == 2
    grouped, grouped_mask = hf_prefill.prefill(model, prompts, 0, room=5)
    assert torch.equal(whole_mask, grouped_mask)
    torch.testing.assert_close(grouped.logits[:, -1], whole.logits[:, -1], rtol=1e-5, atol=1e-5)
    assert all(isinstance(layer, RoomyLayer) for layer in cache_of(grouped).layers)
    assert cache_of(grouped).get_seq_length() == whole_mask.shape[1]


@torch.inference_mode()
def test_grouped_prefill_decodes_as_one_pass_and_as_each_prompt_alone(tiny_model_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = _prompts(model.config.vocab_size, 20)
    limits = DecodeLimits(max_new_tokens=8, eos_ids=frozenset())
    monkeypatch.setattr(hf_prefill, "PASS_COST_TOKENS", 8)
    # The merged cache starts as NaN, not as whatever memory held: a position read before it is written shows.
    monkeypatch.setattr(hf_prefill, "_buffer", lambda like, rows, positions: like.new_full(
        (rows, like.shape[1], positions, like.shape[3]), float("nan")))
    grouped = decode(model, None, prompts, 0, limits).tokens
    alone = [decode(model, None, [p], 0, limits).tokens[0] for p in prompts]
    monkeypatch.setattr(hf_prefill, "PASS_COST_TOKENS", 10**9)
    assert grouped == decode(model, None, prompts, 0, limits).tokens == alone
