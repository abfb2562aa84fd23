"""How well each sentence of an output is grounded in a source passage, by embeddings and negation.

Two signals, computed together so that every text of a batch is embedded once:

- similarity: for each output sentence, its highest cosine similarity (MiniLM) to a source
  sentence or to two adjacent source sentences (an output sentence often merges two);
- negation flips: an output clause whose closest source clause (by cosine plus shared content
  words) differs from it in polarity ("must not feed them" / "are allowed to feed them").
  Embeddings alone miss these: a sentence and its negation sit at about 0.8 cosine.

Beside them, the output's wording that the source lacks (``metrics/novelty.py``), a surface signal that needs
no model, is measured on the same units.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from evaltune.metrics.model_loaders.embeddings import embed
from evaltune.metrics.novelty import NO_NOVELTY, Novelty, novelty
from evaltune.metrics.segments import output_units
from evaltune.metrics.sentences import split_sentences
from evaltune.metrics.text import tokens

# "failed to" / "un-" are left out: paraphrases trade them for each other ("failed to repair" /
# "left unrepaired"), so counting them flags faithful outputs.
_NEGATION = re.compile(r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot)\b|n't\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "but", "is", "are", "was",
     "were", "be", "been", "it", "its", "this", "that", "as", "from", "has", "have", "had", "t"]
)
LEXICAL_WEIGHT = 0.5  # weight of shared content words (Jaccard) beside cosine when matching clauses
_CLAUSE_BREAK = re.compile(r"\s*(?:[;:]|,?\s+but\b|,\s*(?:and|although|though|while|whereas|yet)\b)\s*", re.IGNORECASE)


def is_negated(text: str) -> bool:
    """True when ``text`` holds a negation cue (not, no, never, n't, without, ...)."""
    return _NEGATION.search(text) is not None


def clauses(sentence: str) -> list[str]:
    """``sentence`` cut at semicolons, colons, "but", and ", and" / ", although" ...; never empty."""
    parts = [part.strip() for part in _CLAUSE_BREAK.split(sentence) if part and part.strip()]
    return parts or [sentence]


def source_units(source: str) -> list[str]:
    """The source's sentences and each pair of adjacent sentences: what an output sentence may restate."""
    sentences = split_sentences(source)
    return sentences + [f"{a} {b}" for a, b in itertools.pairwise(sentences)]


@dataclass(frozen=True)
class SentenceSupport:
    """One output sentence, its best similarity to the source, and the source unit that gave it."""

    sentence: str
    similarity: float
    closest: str


@dataclass(frozen=True)
class Grounding:
    """The grounding of one output: per-sentence support and the clauses whose polarity flipped."""

    sentences: tuple[SentenceSupport, ...]
    negation_flips: tuple[tuple[str, str], ...]  # (output clause, closest source clause)
    novelty: Novelty = NO_NOVELTY

    @property
    def min_similarity(self) -> float:
        return min((s.similarity for s in self.sentences), default=1.0)

    @property
    def mean_similarity(self) -> float:
        return sum(s.similarity for s in self.sentences) / len(self.sentences) if self.sentences else 1.0

    def supported_share(self, threshold: float) -> float:
        if not self.sentences:
            return 1.0
        return sum(s.similarity >= threshold for s in self.sentences) / len(self.sentences)


class _Vectors:
    """Embeddings of a batch's texts, computed in one call and looked up by text."""

    def __init__(self, texts: Sequence[str]):
        unique = list(dict.fromkeys(texts))
        self._rows = {text: i for i, text in enumerate(unique)}
        self._matrix = embed(unique)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._matrix[[self._rows[t] for t in texts]]


def ground(outputs: Sequence[str], sources: Sequence[str], negations: bool = True) -> list[Grounding]:
    """The grounding of each output in its source (same length and order as ``outputs``).

    ``negations=False`` skips the clause-level polarity check (and its embeddings): no flips reported.
    """
    plan = []
    for output, source in zip(outputs, sources, strict=True):
        sentences = output_units(output)
        out_clauses = [c for s in sentences for c in clauses(s)] if negations else []
        src_clauses = [c for s in split_sentences(source) for c in clauses(s)] if negations else []
        plan.append((sentences, source_units(source), out_clauses, src_clauses))
    vectors = _Vectors([text for parts in plan for group in parts for text in group])
    found = [_ground_one(vectors, *parts) for parts in plan]
    return [replace(g, novelty=novelty(" ".join(parts[0]), source))
            for g, parts, source in zip(found, plan, sources, strict=True)]


def _ground_one(
    vectors: _Vectors, sentences: list[str], units: list[str], out_clauses: list[str], src_clauses: list[str]
) -> Grounding:
    if not sentences or not units:
        return Grounding(tuple(SentenceSupport(s, 0.0, "") for s in sentences), ())
    sims = vectors(sentences) @ vectors(units).T
    support = tuple(
        SentenceSupport(s, float(row.max()), units[int(row.argmax())]) for s, row in zip(sentences, sims, strict=True)
    )
    if not out_clauses or not src_clauses:
        return Grounding(support, ())
    # The closest source clause by meaning and by shared words: MiniLM alone matches "Visitors may
    # climb the towers of the Harlow Bridge" to the clause about the bridge, not the one about climbing.
    src_words = [_content_words(c) for c in src_clauses]
    match = vectors(out_clauses) @ vectors(src_clauses).T
    flips = []
    for clause, row in zip(out_clauses, match, strict=True):
        words = _content_words(clause)
        overlap = [len(words & other) / max(1, len(words | other)) for other in src_words]
        best = int(np.argmax(row + LEXICAL_WEIGHT * np.array(overlap)))
        # A flip needs a shared content word: an unrelated clause has no polarity to contradict.
        if overlap[best] > 0 and is_negated(clause) != is_negated(src_clauses[best]):
            flips.append((clause, src_clauses[best]))
    return Grounding(support, tuple(flips))


def _content_words(text: str) -> set[str]:
    return {w for w in tokens(_NEGATION.sub(" ", text)) if w not in _STOPWORDS}
