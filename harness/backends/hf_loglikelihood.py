"""Log-likelihood of continuations for a local causal LM, each distinct context computed once.

Tokenization follows lm-evaluation-harness exactly (``_encode_pair``), so numbers are comparable
with its ``loglikelihood`` requests. The speed-up over a full forward pass per (context, continuation)
is that a batch of distinct contexts runs once (left padded), its KV cache is repeated for each
of that context's continuations, and only the continuations' tokens run a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evaltune.harness.backends.base import Loglikelihood, LoglikelihoodRequest
from evaltune.harness.backends.hf_cache import CACHE_ARG, cache_of
from evaltune.harness.backends.hf_prefill import prefill


@dataclass(frozen=True)
class _Group:
    """One distinct context and the requests (by index) that continue it."""

    context: tuple[int, ...]
    members: tuple[int, ...]


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's tokenization of a (context, continuation) request (0.4.13, ``loglikelihood`` and
    ``_encode_pair``): trailing spaces of the context move onto the continuation, and the continuation's
    tokens are whatever ``encode(context + continuation)`` adds after ``encode(context)``. An empty
    context is the BOS (or EOS) token, unless the continuation already starts with it."""
    if context == "":
        prefix = _prefix_token_id(tokenizer)
        continuation_ids = list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
        if continuation_ids and continuation_ids[0] == prefix:
            return continuation_ids[:1], continuation_ids[1:]
        return [prefix], continuation_ids
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _encode(tokenizer, context + continuation)
    context_ids = _encode(tokenizer, context)
    return context_ids, whole[len(context_ids) :]


def _prefix_token_id(tokenizer: Any) -> int:
    return int(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id)


def _encode(tokenizer: Any, text: str) -> list[int]:
    # As lm-eval 0.4.13's tok_encode: the tokenizer's own default for special tokens (Llama-style
    # tokenizers add BOS), except for text that already starts with the prefix token.
    prefix = tokenizer.decode([_prefix_token_id(tokenizer)])
    starts_with_prefix = bool(prefix) and text.startswith(prefix)
    return list(tokenizer(text, add_special_tokens=not starts_with_prefix)["input_ids"])


def score_requests(
    model: Any, tokenizer: Any, requests: Sequence[LoglikelihoodRequest], max_batch_size: int
) -> list[Loglikelihood]:
    """One ``Loglikelihood`` per request, in request order. A (context, continuation) asked for twice (MC1 and
    MC2 of a TruthfulQA question share most of their choices) is computed once."""
    limit = getattr(model.config, "max_position_embeddings", None)
    pairs = [_fit(*encode_pair(tokenizer, r.context, r.continuation), limit) for r in requests]
    first: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    same_as = [first.setdefault((tuple(ctx), tuple(cont)), i) for i, (ctx, cont) in enumerate(pairs)]
    results: dict[int, Loglikelihood] = {}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for chunk in _chunks(_group_by_context(pairs, sorted(first.values())), max_batch_size):
        continuations = [[pairs[i][1] for i in g.members] for g in chunk]
        scored = _score_chunk(model, [list(g.context) for g in chunk], continuations, pad_id)
        for group, group_scores in zip(chunk, scored, strict=True):
            for index, (logprob, greedy) in zip(group.members, group_scores, strict=True):
                results[index] = Loglikelihood(logprob, greedy, len(pairs[index][1]))
    return [results[same_as[i]] for i in range(len(pairs))]


def _fit(context: list[int], continuation: list[int], limit: int | None) -> tuple[list[int], list[int]]:
    """Drop the oldest context tokens when the model would see more than ``limit`` positions (as lm-eval
    does: the input is context + continuation minus its last token)."""
    overflow = len(context) + len(continuation) - 1 - limit if limit else 0
    if overflow > 0:
        context = context[min(overflow, len(context) - 1) :]
    return context, continuation


def _group_by_context(pairs: list[tuple[list[int], list[int]]], indices: list[int]) -> list[_Group]:
    members: dict[tuple[int, ...], list[int]] = {}
    for index in indices:
        members.setdefault(tuple(pairs[index][0]), []).append(index)
    groups = [_Group(ctx, tuple(idx)) for ctx, idx in members.items()]
    # Longest first: similar lengths share a batch (less padding), and an out-of-memory shows up at once.
    return sorted(groups, key=lambda g: -len(g.context))


def _chunks(groups: list[_Group], max_rows: int) -> list[list[_Group]]:
    """Consecutive groups whose continuations total at most ``max_rows`` (one group may exceed it alone)."""
    chunks: list[list[_Group]] = []
    current: list[_Group] = []
    rows = 0
    for group in groups:
        if current and rows + len(group.members) > max_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(group)
        rows += len(group.members)
    if current:
        chunks.append(current)
    return chunks


@torch.inference_mode()
def _score_chunk(
    model: Any, contexts: list[list[int]], continuations: list[list[list[int]]], pad_id: int
) -> list[list[tuple[float, bool]]]:
    """(sum of log-probs, all-greedy) for each continuation of each context."""
    out, mask = prefill(model, contexts, pad_id)
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # predicts each continuation's first token

    rows = [(g, c) for g, conts in enumerate(continuations) for c in conts]
    rest = None
    longest = max(len(c) for _, c in rows)
    if longest > 1:
        rest = _continue_from_cache(model, cache_of(out), mask, rows, longest - 1, pad_id)

    scores: list[list[tuple[float, bool]]] = [[] for _ in contexts]
    for r, (g, cont) in enumerate(rows):
        if not cont:
            scores[g].append((0.0, True))
            continue
        step_logprobs = [first[g]] + ([rest[r, j] for j in range(len(cont) - 1)] if rest is not None else [])
        logprob = sum(float(lp[tok]) for lp, tok in zip(step_logprobs, cont, strict=True))
        greedy = all(int(lp.argmax()) == tok for lp, tok in zip(step_logprobs, cont, strict=True))
        scores[g].append((logprob, greedy))
    return scores


def _continue_from_cache(
    model: Any, cache: Any, context_mask: torch.Tensor, rows: list[tuple[int, list[int]]], steps: int, pad_id: int
) -> torch.Tensor:
    """Log-probs (rows, steps, vocab) after feeding each continuation minus its last token on top of its
    context's cache. Continuations are right padded: causal attention keeps pads from touching real tokens."""
    device = context_mask.device
    select = torch.tensor([g for g, _ in rows], device=device)
    cache.batch_select_indices(select)  # repeats each context's cache once per continuation
    tails = [c[:-1] + [pad_id] * (steps - len(c[:-1])) for _, c in rows]
    tail_mask = torch.tensor([[1] * len(c[:-1]) + [0] * (steps - len(c[:-1])) for _, c in rows], device=device)
    ids = torch.tensor(tails, device=device)
    mask = torch.cat([context_mask[select], tail_mask], dim=1)
    start = context_mask[select].sum(-1, keepdim=True)
    positions = start + torch.arange(steps, device=device).unsqueeze(0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{CACHE_ARG: cache})
    return torch.log_softmax(out.logits.float(), dim=-1)
