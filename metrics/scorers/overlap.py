"""N-gram overlap with references: BLEU and chrF (sacrebleu), ROUGE-1, ROUGE-2 and ROUGE-L.

BLEU and chrF are on sacrebleu's 0-100 scale, so that the numbers equal what ``sacrebleu``
prints and what papers report. Per output they are sentence-level scores against all of the
item's references (BLEU with effective order, as ``sacrebleu.sentence_bleu``); the run-level
mean comes with a 95% interval, and the corpus-level score (the number MT papers quote: n-gram
statistics pooled before the ratio) is in the details with sacrebleu's signature.

ROUGE is one scorer with a parameter, ``rouge(variant=1|2|l)``, whose three parameterisations keep the names
they had as three scorers: ``rouge_1`` (unigram), ``rouge_2`` (bigram) and ``rouge_l`` (longest common
subsequence, the default); each is the F-measure against the best-matching reference, on 0-1, equal to the
rouge-score package's values (its tokenizer, no stemming). The overlap is counted here so that
scoring does not import nltk (about 3 s); precision and recall are in each score's details.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Literal

from evaltune.metrics.records import NOT_APPLICABLE, Example, MetricValue, ScoreResult
from evaltune.metrics.registry import Aggregate, ItemScorer, scorer
from evaltune.metrics.stats.intervals import mean_with_ci
from evaltune.metrics.text import fold_accents


@cache
def _sacrebleu_metric(name: str, corpus: bool) -> Any:
    from sacrebleu.metrics import BLEU, CHRF  # imported here: pulls regex tables and portalocker

    if name == "bleu":
        # sentence_bleu uses effective order (no zero precisions for short sentences); corpus BLEU does not.
        return BLEU() if corpus else BLEU(effective_order=True)
    return CHRF()


def corpus_score(name: str, outputs: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus-level sacrebleu score and signature; items may have different numbers of references."""
    metric = _sacrebleu_metric(name, corpus=True)
    width = max(len(refs) for refs in references)
    # sacrebleu takes one stream per reference position; None fills positions an item lacks.
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    score = metric.corpus_score(list(outputs), streams)
    return float(score.score), str(metric.get_signature())


def _sentence(name: str, example: Example) -> ScoreResult:
    if not example.references:
        return NOT_APPLICABLE
    result = _sacrebleu_metric(name, corpus=False).sentence_score(example.output, list(example.references))
    return ScoreResult(float(result.score))


def _corpus_aggregate(name: str) -> Aggregate:
    def aggregate(examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
        scored = [(e, r.value) for e, r in zip(examples, results, strict=True) if r.value is not None]
        if not scored:
            return []
        estimate = mean_with_ci([value for _, value in scored])
        corpus, signature = corpus_score(name, [e.output for e, _ in scored], [e.references for e, _ in scored])
        return [MetricValue(name, estimate.value, estimate.ci_low, estimate.ci_high, estimate.n,
                            {"corpus": corpus, "signature": signature, "scale": "0-100"})]

    return aggregate


@scorer("bleu", family="quality", needs=("reference",), aggregate=_corpus_aggregate("bleu"))
def bleu(example: Example) -> ScoreResult:
    """Sentence BLEU (sacrebleu, 0-100) against all references; corpus BLEU in the run's details."""
    return _sentence("bleu", example)


@scorer("chrf", family="quality", needs=("reference",), aggregate=_corpus_aggregate("chrf"))
def chrf(example: Example) -> ScoreResult:
    """Sentence chrF (sacrebleu, 0-100) against all references; corpus chrF in the run's details."""
    return _sentence("chrf", example)


Overlap = Callable[[list[str], list[str]], tuple[float, float]]  # (reference, output) tokens -> (P, R)


def _rouge_tokens(text: str) -> list[str]:
    from rouge_score.tokenize import tokenize  # this module alone needs neither nltk nor absl

    return list(tokenize(fold_accents(text), None))  # rouge-score's tokenizer drops non-ASCII letters


def _ngram_overlap(n: int) -> Overlap:
    def overlap(reference: list[str], output: list[str]) -> tuple[float, float]:
        ref_grams = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
        out_grams = Counter(tuple(output[i : i + n]) for i in range(len(output) - n + 1))
        shared = sum((ref_grams & out_grams).values())
        return shared / max(sum(out_grams.values()), 1), shared / max(sum(ref_grams.values()), 1)

    return overlap


def _lcs_overlap(reference: list[str], output: list[str]) -> tuple[float, float]:
    if not reference or not output:
        return 0.0, 0.0
    previous = [0] * (len(output) + 1)
    for ref_token in reference:
        current = [0]
        for j, out_token in enumerate(output):
            current.append(previous[j] + 1 if ref_token == out_token else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1] / len(output), previous[-1] / len(reference)


def _f_measure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


_OVERLAPS: dict[str, Overlap] = {"1": _ngram_overlap(1), "2": _ngram_overlap(2), "l": _lcs_overlap}


@scorer("rouge", family="quality", needs=("reference",), factory=True,
        presets={"rouge_1": {"variant": "1"}, "rouge_2": {"variant": "2"}, "rouge_l": {"variant": "l"}})
def rouge(variant: Literal["1", "2", "l"] = "l") -> ItemScorer:
    """ROUGE F-measure (0-1) against the best-matching reference, as the rouge-score package computes it.

    Precision and recall are in the details.

    Args:
        variant: 1 (unigram overlap), 2 (bigram overlap) or l (longest common subsequence).
    """
    overlap = _OVERLAPS[variant]

    def score(example: Example) -> ScoreResult:
        if not example.references:
            return NOT_APPLICABLE
        output = _rouge_tokens(example.output)
        best: tuple[float, float, float, str] = (-1.0, 0.0, 0.0, "")
        for reference in example.references:
            precision, recall = overlap(_rouge_tokens(reference), output)
            if _f_measure(precision, recall) > best[0]:  # ties keep the first reference
                best = (_f_measure(precision, recall), precision, recall, reference)
        value, precision, recall, reference = best
        return ScoreResult(value, {"precision": precision, "recall": recall, "best_reference": reference})

    return score
