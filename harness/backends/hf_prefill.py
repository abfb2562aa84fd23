"""Prefill: the forward pass over a batch of prompts whose KV cache decoding or scoring continues.

Tokens that begin every prompt of the batch (a chat template's system prompt, a few-shot primer) run once
and their cache is repeated for each row: each row is then the shared prefix, left padding (masked, and
skipped by the positions), and the rest of its prompt.

The rest runs in groups of rows of similar length (see ``length_groups``), so a batch whose prompts range from
a short question to a long passage does not compute every row at the longest row's width. The groups' caches
are laid side by side, padded in the middle, in one cache with room for the tokens still to come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from evaltune.harness.backends.hf_cache import CACHE_ARG, RoomyLayer, cache_of

MIN_SHARED = 16  # shorter shared prefixes are not worth a forward pass of their own


@dataclass(frozen=True)
class PassSpeed:
    """What one more forward pass costs on a kind of device, in prompt tokens of compute: a pass reads every
    weight once and launches every layer's kernels; a token costs its matmuls."""

    read_bytes_per_s: float
    matmul_flop_per_s: float
    launch_s_per_layer: float
    launch_s_per_pass: float


# Measured on this project's 2-core CPU: a one-token pass takes 63.8 ms on SmolLM2-135M (30 layers), ~29 tokens'
# worth; 1.34 ms on the tests' 2-layer model, ~580 tokens.
CPU_SPEED = PassSpeed(read_bytes_per_s=9.5e9, matmul_flop_per_s=120e9, launch_s_per_layer=2.5e-4,
                      launch_s_per_pass=8e-4)
# Measured on an H200 in bf16 (bench/gpu_check.py): a SmolLM2-135M-shaped pass took 38.9 ms for one token and
# 36.5 ms for 128 x 128 tokens. Launching the layers from Python is the whole cost, so a pass is worth tens of
# thousands of tokens of padding and a batch's prompts are not split.
GPU_SPEED = PassSpeed(read_bytes_per_s=4.0e12, matmul_flop_per_s=3.0e14, launch_s_per_layer=1.2e-3,
                      launch_s_per_pass=1e-3)
PASS_COST_TOKENS: int | None = None  # None: estimated from the model by pass_cost_tokens


def prefill(model: Any, prompts: list[list[int]], pad_id: int, room: int = 0) -> tuple[Any, torch.Tensor]:
    """The model's output (the last position's logits and the KV cache) and the attention mask it was built
    with, for ``prompts`` (each at least one token). ``room``: positions to reserve in the cache for decoding."""
    if not _plain_model(model):  # sliding windows, linear attention: whole prompts in one pass
        return _forward(model, None, 0, prompts, pad_id)
    shared = shared_prefix(prompts)
    prefix = None
    if shared >= MIN_SHARED:
        prefix = cache_of(model(input_ids=torch.tensor([prompts[0][:shared]], device=model.device), use_cache=True,
                                logits_to_keep=1))
    else:
        shared = 0
    rests = [p[shared:] for p in prompts]
    groups = length_groups([len(r) for r in rests], PASS_COST_TOKENS or pass_cost_tokens(model))
    if len(groups) > 1:
        return _grouped(model, prefix, shared, rests, groups, pad_id, room)
    return _forward(model, _repeated(prefix, len(prompts)), shared, rests, pad_id)


def pass_cost_tokens(model: Any) -> int:
    """How many prompt tokens of compute one more forward pass of ``model`` costs on its device."""
    speed = GPU_SPEED if model.device.type == "cuda" else CPU_SPEED
    params = model.num_parameters()
    element = next(model.parameters()).element_size()
    layers = int(getattr(model.config.get_text_config(decoder=True), "num_hidden_layers", 12))
    pass_s = params * element / speed.read_bytes_per_s + layers * speed.launch_s_per_layer + speed.launch_s_per_pass
    return max(1, round(pass_s / (2 * params / speed.matmul_flop_per_s)))


def length_groups(lengths: list[int], pass_cost: int) -> list[list[int]]:
    """Row indices grouped so that padding every group to its longest row, plus ``pass_cost`` tokens per group,
    costs the fewest tokens (an exact split of the rows sorted by length, longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best = [0] * (len(order) + 1)  # best[j]: the cost of the first j rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        best[j], cut[j] = min(
            (best[i] + pass_cost + (j - i) * lengths[order[i]], i) for i in range(j)
        )
    groups = []
    end = len(order)
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


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


def _forward(model: Any, cache: Any, shared: int, rests: list[list[int]], pad_id: int) -> tuple[Any, torch.Tensor]:
    """One pass over ``rests`` (left padded) after ``shared`` cached positions; the output and the whole mask."""
    ids, rest_mask = left_pad(rests, pad_id, model.device)
    mask = torch.cat([rest_mask.new_ones((len(rests), shared)), rest_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                **{CACHE_ARG: cache})
    return out, mask


def _grouped(
    model: Any, prefix: Any, shared: int, rests: list[list[int]], groups: list[list[int]], pad_id: int, room: int
) -> tuple[Any, torch.Tensor]:
    """Each group of rows in its own pass; the caches merged into one, every row's own tokens last."""
    width = max(len(r) for r in rests)
    rows, positions = len(rests), shared + width + room
    logits: torch.Tensor | None = None
    layers: list[tuple[torch.Tensor, torch.Tensor]] = []
    for group in groups:
        out, _ = _forward(model, _repeated(prefix, len(group)), shared, [rests[i] for i in group], pad_id)
        group_cache = cache_of(out)
        if logits is None:  # the first group shows the shapes
            logits = out.logits.new_empty((rows, *out.logits.shape[1:]))
            layers = [(_buffer(layer.keys, rows, positions), _buffer(layer.values, rows, positions))
                      for layer in group_cache.layers]
        index = torch.tensor(group, device=model.device)
        logits[index] = out.logits
        own = group_cache.get_seq_length() - shared  # this group's width
        for (keys, values), layer in zip(layers, group_cache.layers, strict=True):
            for buffer, part in ((keys, layer.keys), (values, layer.values)):
                buffer[index, :, :shared] = part[:, :, :shared]
                buffer[index, :, shared : shared + width - own] = 0  # masked out, but never NaN
                buffer[index, :, shared + width - own : shared + width] = part[:, :, shared:]
    cache = DynamicCache()
    cache.layers = [RoomyLayer.over(keys, values, shared + width) for keys, values in layers]
    _, rest_mask = left_pad(rests, pad_id, model.device)
    mask = torch.cat([rest_mask.new_ones((rows, shared)), rest_mask], dim=1)
    fields: dict[str, Any] = {"logits": logits, CACHE_ARG: cache}
    return CausalLMOutputWithPast(**fields), mask


def _buffer(like: torch.Tensor, rows: int, positions: int) -> torch.Tensor:
    """Room for ``rows`` rows of ``positions`` cached positions, left unset: every position is written before
    attention reads it (filling the whole cache with zeros first took ~0.7 s of a 186-row batch)."""
    return like.new_empty((rows, like.shape[1], positions, like.shape[3]))


def _repeated(prefix: Any, rows: int) -> Any:
    """A new cache holding ``prefix`` once per row (``prefix`` itself is left as it is)."""
    if prefix is None:
        return None
    return DynamicCache(ddp_cache_data=[(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
                                        for layer in prefix.layers])


def _plain_model(model: Any) -> bool:
    """True when the model's cache is plain dynamic layers: every layer attends to every earlier position."""
    config = model.config.get_text_config(decoder=True)
    kinds = getattr(config, "layer_types", None)
    if kinds is not None:
        return set(kinds) == {"full_attention"}
    return not getattr(config, "sliding_window", None)
