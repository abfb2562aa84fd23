"""What a run has to do: one unit of work per (item, sample), each with its cache key.

The cache key is a hash of (model fingerprint, rendered prompt, generation settings,
sample index, seed): anything that could change the output is in it, and nothing else (so under greedy
decoding the seed is left out: ``GenerationSettings.output_seed``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaltune.harness.backends.base import Backend, GenerationRequest, LoglikelihoodRequest, Prompt
from evaltune.harness.prompts import compose_input, prompt_for, render_as_text
from evaltune.harness.suite import GenerationSettings, Item

__all__ = ["Work", "cache_key", "choice_continuations", "compose_input", "plan_work", "render_as_text", "sample_seed"]


@dataclass(frozen=True)
class Work:
    item: Item
    item_row_id: int
    sample_index: int
    cache_key: str
    rendered: Prompt  # exactly what the backend feeds the model (harness.prompts.prompt_for)
    seed: int
    scores_references: bool = False  # also log P(reference | prompt), for perplexity

    @property
    def prompt_text(self) -> str:
        """The rendered prompt as stored: text, or chat messages as JSON."""
        return render_as_text(self.rendered)

    def generation_request(self, settings: GenerationSettings) -> GenerationRequest:
        return GenerationRequest(prompt=self.rendered, settings=settings, seed=self.seed)

    def choice_requests(self) -> list[LoglikelihoodRequest]:
        return [LoglikelihoodRequest(self.prompt_text, c) for c in choice_continuations(self.item)]

    def reference_requests(self) -> list[LoglikelihoodRequest]:
        """log P(reference | rendered prompt) for each reference; none for chat messages or sample > 0."""
        if not self.scores_references:
            return []
        # A prompt ending in whitespace (a chat template's "assistant\n") already separates the answer.
        text = self.prompt_text
        delimiter = "" if not text or text[-1].isspace() else " "
        return [LoglikelihoodRequest(text, delimiter + reference) for reference in self.item.references]


def choice_continuations(item: Item) -> list[str]:
    """The continuation scored for each choice: lm-evaluation-harness's ``target_delimiter`` (a space unless
    ``metadata["choice_delimiter"]`` says otherwise: CrowS-Pairs scores bare sentences), then the choice."""
    delimiter = str(item.metadata.get("choice_delimiter", " "))
    return [delimiter + choice for choice in item.choices]


def cache_key(model_fingerprint: str, prompt: str, settings: dict[str, Any], sample_index: int, seed: int) -> str:
    payload = json.dumps(
        [model_fingerprint, prompt, settings, sample_index, seed], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def sample_seed(seed: int, item_id: str, sample_index: int) -> int:
    """A per-sample seed, stable across runs, batch sizes and resumes."""
    digest = hashlib.sha256(f"{seed}:{item_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def plan_work(
    backend: Backend,
    items: Sequence[Item],
    settings: GenerationSettings,
    seed: int,
    score_references: bool = False,
) -> list[Work]:
    """Every (item, sample) of the run, each prompt rendered (``harness.prompts.prompt_for``); ``item_row_id`` is
    left 0 for the runner to fill in once the items are stored. Multiple-choice items need one unit (no sampling).
    Raises ``PromptError`` for an item the model cannot take.

    With ``score_references``, the first sample of each text-prompted item with references also
    gets the log-likelihood of every reference given the rendered prompt (for perplexity).
    """
    fingerprint = backend.fingerprint
    identity = settings.identity()
    key_seed = settings.output_seed(seed)
    work: list[Work] = []
    for item in items:
        if item.is_multiple_choice:
            # Log-likelihoods are scored on the raw text, as lm-evaluation-harness does.
            text = render_as_text(compose_input(item))
            mc_identity = {"loglikelihood": choice_continuations(item)}
            key = cache_key(fingerprint, text, mc_identity, 0, 0)
            work.append(Work(item, 0, 0, key, text, 0))
            continue
        rendered = prompt_for(backend, item, settings)
        text = render_as_text(rendered)
        for index in range(settings.samples):
            sample = sample_seed(seed, item.id, index)
            with_refs = score_references and index == 0 and bool(item.references) and isinstance(rendered, str)
            # References are not in the key: a cached output stands in, and the runner scores the
            # references again for it (a forward pass, no generation).
            key = cache_key(fingerprint, text, identity, index, key_seed)
            work.append(Work(item, 0, index, key, rendered, sample, with_refs))
    return work
