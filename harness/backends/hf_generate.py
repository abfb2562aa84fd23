"""Batched generation for a local causal LM: left padding, length-sorted batches, stop strings, seeded sampling.

Each output depends only on its own prompt, settings and seed, never on which other requests
share its batch: greedy decoding is batch-invariant (left padding + attention mask), and sampling
draws its randomness from one generator per request (Gumbel-max over the temperature/top-p
distribution) instead of from torch's global RNG. That is what lets the runner cache outputs by
(prompt, settings, seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from evaltune.harness.backends.base import Completion, GenerationRequest, OutputsDone
from evaltune.harness.backends.hf_decode import DecodeLimits, SeededSampler, decode
from evaltune.harness.suite import GenerationSettings


def generate_all(
    model: Any, tokenizer: Any, requests: Sequence[GenerationRequest], rows_for: Callable[[int], int],
    on_output: OutputsDone | None = None,
) -> list[Completion]:
    """One completion per request, in request order. Requests are grouped by settings, sorted by prompt
    length (longest first) and run in batches of at most settings.batch_size rows, and at most
    ``rows_for(positions)`` rows of the batch's longest prompt plus its new tokens (what memory allows).
    ``on_output`` is told how many outputs each decoding step finished."""
    prompts = [encode_prompt(tokenizer, r.prompt) for r in requests]
    results: list[Completion | None] = [None] * len(requests)
    by_settings: dict[GenerationSettings, list[int]] = {}
    for index, request in enumerate(requests):
        by_settings.setdefault(request.settings, []).append(index)
    for settings, indices in by_settings.items():
        ordered = sorted(indices, key=lambda i: -len(prompts[i]))
        start = 0
        while start < len(ordered):
            longest = len(prompts[ordered[start]]) + settings.max_new_tokens
            batch = ordered[start : start + max(1, min(settings.batch_size, rows_for(longest)))]
            start += len(batch)
            seeds = [requests[i].seed for i in batch]
            outputs = _generate_batch(model, tokenizer, [prompts[i] for i in batch], settings, seeds, on_output)
            for index, completion in zip(batch, outputs, strict=True):
                results[index] = completion
    return [c for c in results if c is not None]


def encode_prompt(tokenizer: Any, prompt: Any) -> list[int]:
    """The token ids of a rendered prompt, exactly as the model sees them (the vllm backend sends the same)."""
    if not isinstance(prompt, str):
        raise TypeError("hf generation takes rendered text; call HFBackend.model_input first")
    # The rendered text is exactly what the model sees: a chat template already holds its special tokens.
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if not ids:  # an empty prompt still needs one position to predict from
        ids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
    return ids


def _generate_batch(
    model: Any, tokenizer: Any, prompts: list[list[int]], settings: GenerationSettings, seeds: list[int],
    on_output: OutputsDone | None = None,
) -> list[Completion]:
    started = time.perf_counter()
    eos_ids = _eos_ids(model, tokenizer)
    limits = DecodeLimits(settings.max_new_tokens, frozenset(eos_ids), tuple(settings.stop))
    sampler = None if settings.greedy else SeededSampler(seeds, settings.temperature, settings.top_p)
    decoded = decode(model, tokenizer, prompts, tokenizer.pad_token_id, limits, sampler, on_output)
    latency = (time.perf_counter() - started) / len(prompts)
    completions = []
    for prompt, tokens, stopped in zip(prompts, decoded.tokens, decoded.stopped, strict=True):
        text, used, reason = _finish(tokenizer, tokens, stopped, eos_ids, settings.stop)
        completions.append(Completion(text, len(prompt), used, latency, reason))
    return completions


def _finish(
    tokenizer: Any, tokens: list[int], stopped: bool, eos_ids: set[int], stops: Sequence[str]
) -> tuple[str, int, str]:
    """(text cut at the first stop string, tokens generated, finish reason) for one row."""
    used = len(tokens)
    ended_on_eos = bool(tokens) and tokens[-1] in eos_ids
    kept = tokens[:-1] if ended_on_eos else tokens
    reason = "stop" if stopped or ended_on_eos else "length"
    text = tokenizer.decode(kept, skip_special_tokens=True)
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return text, used, reason


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, list | tuple) else {int(eos)}
