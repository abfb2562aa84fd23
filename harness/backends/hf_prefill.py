"""Prefill: one forward pass over a batch of prompts, left padded, whose KV cache decoding or scoring continues.

Tokens that begin every prompt of the batch (a chat template's system prompt, a few-shot primer) run once
and their cache is repeated for each row: each row is then the shared prefix, left padding (masked, and
skipped by the positions), and the rest of its prompt.
"""

from __future__ import annotations

from typing import Any

import torch

MIN_SHARED = 16  # shorter shared prefixes are not worth a forward pass of their own


def prefill(model: Any, prompts: list[list[int]], pad_id: int) -> tuple[Any, torch.Tensor]:
    """The model's output (the last position's logits and the KV cache) and the attention mask it was built
    with, for ``prompts`` (each at least one token)."""
    device = model.device
    shared = shared_prefix(prompts)
    cache = None
    if shared >= MIN_SHARED:
        cache = model(input_ids=torch.tensor([prompts[0][:shared]], device=device), use_cache=True,
                      logits_to_keep=1).past_key_values
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        ids, mask = left_pad(prompts, pad_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        return out, mask
    cache.batch_repeat_interleave(len(prompts))
    ids, rest_mask = left_pad([p[shared:] for p in prompts], pad_id, device)
    mask = torch.cat([rest_mask.new_ones((len(prompts), shared)), rest_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    return out, mask


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving every prompt at least one token of its own."""
    if len(prompts) < 2:
        return 0
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    for n in range(shortest - 1):
        if any(p[n] != first[n] for p in prompts):
            return n
    return max(shortest - 1, 0)


def left_pad(sequences: list[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both (rows, longest), padded on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in sequences], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
    return ids, mask
