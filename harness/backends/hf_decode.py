"""The decoding loop: one prefill, then one token per step for the rows that are still going.

Written out instead of calling ``model.generate`` because a batch of an evaluation finishes unevenly: one
answer ends after 5 tokens, its neighbour runs to the limit. ``generate`` keeps computing every row until
the last one ends; here a finished row leaves the batch (its KV cache rows are dropped), so a step costs
only what is still being written. Stop strings are checked on the last few tokens of the rows that just
grew, never by decoding whole outputs at every step, and not at all when a suite names none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.logits_process import TopPLogitsWarper

from evaltune.harness.backends.hf_cache import CACHE_ARG, cache_of, kept_rows, reserve
from evaltune.harness.backends.hf_prefill import prefill


class SeededSampler:
    """Turns the argmax into a draw from softmax(logits / temperature), top-p filtered, by Gumbel-max.
    Row ``i`` uses its own generator seeded with ``seeds[i]``, so a draw never depends on the batch."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.temperature = temperature
        self.top_p = TopPLogitsWarper(top_p) if top_p < 1.0 else None

    def __call__(self, rows: Sequence[int], scores: torch.Tensor) -> torch.Tensor:
        """Noisy scores for the batch rows whose original indices are ``rows``."""
        scores = scores.float() / self.temperature
        if self.top_p is not None:
            scores = self.top_p(None, scores)  # the warper never reads input_ids
        # Drawn on the CPU so that a seed gives the same noise on any device.
        # A negative row has finished but could not leave the batch: it draws nothing, so no other row's
        # stream of numbers moves.
        uniform = torch.stack([
            torch.rand(scores.shape[-1], generator=self.generators[r]) if r >= 0 else torch.full(scores.shape[-1:], 0.5)
            for r in rows
        ])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1.0 - 1e-7)))
        return scores + gumbel.to(scores.device)


@dataclass(frozen=True)
class DecodeLimits:
    """When a row ends: after ``max_new_tokens``, on a token of ``eos_ids``, or once its text holds a stop."""

    max_new_tokens: int
    eos_ids: frozenset[int]
    stops: tuple[str, ...] = ()

    @property
    def stop_window(self) -> int:
        # A stop string of n characters spans at most n tokens; a few more cover tokens that decode to nothing.
        return max((len(s) for s in self.stops), default=0) + 4


@dataclass
class Decoded:
    """The tokens each row generated (EOS included when it ended on one), and whether a stop string ended it."""

    tokens: list[list[int]]
    stopped: list[bool] = field(default_factory=list)


@torch.inference_mode()
def decode(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    pad_id: int,
    limits: DecodeLimits,
    sampler: SeededSampler | None = None,
    on_finished: Callable[[int], None] | None = None,
) -> Decoded:
    """Greedy (or seeded-sampled) continuations of left-padded ``prompts``. ``on_finished`` is told, after each
    step that ends rows, how many it ended (for a progress bar; it cannot change the tokens)."""
    out, mask = prefill(model, prompts, pad_id, room=limits.max_new_tokens)
    cache, logits = cache_of(out), out.logits[:, -1, :]
    reserve(cache, limits.max_new_tokens)  # each step writes in place instead of copying the whole cache
    next_position = mask.sum(-1, keepdim=True)
    result = Decoded([[] for _ in prompts], [False] * len(prompts))
    active = list(range(len(prompts)))  # original row index of each batch row
    while active:
        scores = sampler(active, logits) if sampler is not None else logits
        chosen = scores.argmax(-1)
        finished = _append(result, active, chosen.tolist(), tokenizer, limits)
        if on_finished is not None:
            # A negative row ended in an earlier step and was told then.
            ended = sum(done for row, done in zip(active, finished, strict=True) if row >= 0)
            if ended:
                on_finished(ended)
        if all(finished):
            break
        keep = kept_rows(finished)  # row order does not change any row's output
        if len(keep) < len(active) and hasattr(cache, "batch_select_indices"):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask, next_position, chosen = mask[index], next_position[index], chosen[index]
            active = [active[b] for b in keep]
        else:  # no way to drop cache rows: finished rows ride along and their tokens are ignored
            active = [r if not done else -1 - r for r, done in zip(active, finished, strict=True)]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(input_ids=chosen.unsqueeze(-1), attention_mask=mask, position_ids=next_position,
                    use_cache=True, **{CACHE_ARG: cache})
        cache, logits = cache_of(out), out.logits[:, -1, :]
        next_position = next_position + 1
    return result


def _append(result: Decoded, active: list[int], chosen: list[int], tokenizer: Any, limits: DecodeLimits) -> list[bool]:
    """Add each active row's new token; True for the rows that are now finished. A negative entry in
    ``active`` is a row that already finished but could not leave the batch."""
    finished = []
    for row, token in zip(active, chosen, strict=True):
        if row < 0:
            finished.append(True)
            continue
        tokens = result.tokens[row]
        tokens.append(token)
        done = token in limits.eos_ids or len(tokens) >= limits.max_new_tokens
        if limits.stops and token not in limits.eos_ids and _ends_with_stop(tokenizer, tokens, limits):
            result.stopped[row] = done = True
        finished.append(done)
    return finished


def _ends_with_stop(tokenizer: Any, tokens: list[int], limits: DecodeLimits) -> bool:
    """True when a stop string appears in the text of the last few tokens (it was not there a step before)."""
    tail = tokenizer.decode(tokens[-limits.stop_window :], skip_special_tokens=True)
    return any(stop in tail for stop in limits.stops)
