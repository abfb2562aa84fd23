"""``self_consistency``: SelfCheckGPT-style agreement of an output with the model's other samples.

Reference-free: a model that knows a fact tends to say it in every sample, while an invented
detail differs from sample to sample. Each sentence of the output is compared with every other
sample of the same item (``Example.samples``; the suite must sample more than once):

- embedding agreement: its highest MiniLM cosine to any sentence of that sample (the value);
- token agreement: the share of its content words that the sample contains (in the details).

A sentence's consistency is its mean agreement over the samples; the output's value is the mean
over its sentences, in [0, 1], higher = more consistent (fewer likely hallucinations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaltune.metrics.model_loaders.embeddings import embed
from evaltune.metrics.records import Example, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.sentences import split_sentences
from evaltune.metrics.text import tokens

_NEEDS_SAMPLES = ScoreResult(
    None, {"reason": "needs other samples of the same item: set generation.samples above 1 in the suite"}
)
# Function words agree trivially; leaving them out makes token agreement about content.
_STOPWORDS = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "but", "is", "are", "was",
     "were", "be", "been", "it", "its", "this", "that", "as", "from", "has", "have", "had"]
)


def _sentences(text: str) -> list[str]:
    return split_sentences(text) or ([text.strip()] if text.strip() else [])


def _token_agreement(sentence: str, sample: str) -> float:
    words = [w for w in tokens(sentence) if w not in _STOPWORDS]
    if not words:
        return 1.0
    present = set(tokens(sample))
    return sum(w in present for w in words) / len(words)


def _score(example: Example, vectors: dict[str, np.ndarray]) -> ScoreResult:
    sentences = _sentences(example.output)
    samples = [s for s in example.samples if _sentences(s)]
    if not sentences:
        return ScoreResult(None, {"reason": "empty output"})
    per_sentence: list[dict[str, Any]] = []
    for sentence in sentences:
        embedding = [
            max(0.0, float(np.max(np.stack([vectors[t] for t in _sentences(sample)]) @ vectors[sentence])))
            for sample in samples
        ]
        lexical = [_token_agreement(sentence, sample) for sample in samples]
        per_sentence.append({"sentence": sentence, "consistency": float(np.mean(embedding)),
                             "token_agreement": round(float(np.mean(lexical)), 4)})
    value = float(np.mean([s["consistency"] for s in per_sentence]))
    for s in per_sentence:
        s["consistency"] = round(s["consistency"], 4)
    least = min(per_sentence, key=lambda s: s["consistency"])
    return ScoreResult(value, {"n_samples": len(samples), "sentences": per_sentence,
                               "least_consistent": least["sentence"]})


@scorer("self_consistency", family="hallucination", higher_is_better=True, needs=("samples",), batched=True)
def self_consistency(examples: Sequence[Example]) -> list[ScoreResult]:
    """Mean agreement (MiniLM) of each output sentence with the item's other samples; 1 = every sample agrees."""
    usable = [any(s.strip() for s in e.samples) for e in examples]
    texts = sorted({t for e, ok in zip(examples, usable, strict=True) if ok
                    for text in (e.output, *e.samples) for t in _sentences(text)})
    vectors = dict(zip(texts, embed(texts), strict=True)) if texts else {}
    return [_score(e, vectors) if ok else _NEEDS_SAMPLES for e, ok in zip(examples, usable, strict=True)]
