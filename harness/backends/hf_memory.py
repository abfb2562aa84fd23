"""How many rows a batch may hold, from the memory the machine has free and what one row costs the model.

A row's cost is its KV cache at the row's length (generation knows it: the longest prompt of the batch plus
the new tokens; otherwise 2,048 tokens, or the model's longest context when shorter) plus one row of fp32
logits; the batch may use
a quarter of the free memory (``MemAvailable`` on the CPU, ``torch.cuda.mem_get_info`` on a GPU), and is
capped where a bigger batch stops paying. On a CPU a decoding step of SmolLM2-135M costs about 70 ms for reading
the weights plus ~2.4 ms per row (3.48 ms per row at 64 rows, 2.96 at 128, 2.77 at 192), so wide batches pay:
fewer steps read the weights, and the rows that finish early leave the batch anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CPU_CAP = 256
GPU_CAP = 256
_SHARE = 0.25
_ROW_TOKENS = 2048


def batch_rows_for_memory(model: Any, device: str, tokens: int = _ROW_TOKENS) -> int:
    """The largest batch (in rows of ``tokens`` positions) that fits in a quarter of free memory, between 1 and
    the device's cap."""
    per_row = row_bytes(model, tokens)
    free = _free_bytes(device)
    cap = GPU_CAP if device.startswith("cuda") else CPU_CAP
    if free is None:
        return min(cap, 16)
    return max(1, min(cap, int(free * _SHARE) // max(per_row, 1)))


def row_bytes(model: Any, tokens: int = _ROW_TOKENS) -> int:
    """KV cache of one row of ``tokens`` positions (fewer when the model's context is shorter), plus fp32
    logits."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = int(getattr(text, "num_hidden_layers", 12))
    heads = int(getattr(text, "num_attention_heads", 12))
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    tokens = min(int(getattr(text, "max_position_embeddings", None) or tokens), tokens)
    element = next(model.parameters()).element_size()
    kv = 2 * layers * kv_heads * head_dim * tokens * element
    return kv + int(text.vocab_size) * 4


def _free_bytes(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None
