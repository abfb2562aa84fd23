"""N-gram overlap with references: BLEU and chrF (sacrebleu), ROUGE-1/2/L (rouge-score).

BLEU and chrF are on sacrebleu's 0-100 scale, so that the numbers equal what ``sacrebleu``
prints and what papers report. Per output they are sentence-level scores against all of the
item's references (BLEU with effective order, as ``sacrebleu.sentence_bleu``); the run-level
mean comes with a 95% interval, and the corpus-level score (the number MT papers quote: n-gram
statistics pooled before the ratio) is in the details with sacrebleu's signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from evaltune.metrics.records import NOT_APPLICABLE, Example, MetricValue, ScoreResult
from evaltune.metrics.registry import Aggregate, scorer
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


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # imported here: it pulls nltk and absl

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


@scorer("rouge", family="quality", needs=("reference",))
def rouge(example: Example) -> ScoreResult:
    """ROUGE-L F against the best reference, with ROUGE-1/2/L precision, recall and F in the details."""
    if not example.references:
        return NOT_APPLICABLE
    output = fold_accents(example.output)  # rouge-score's tokenizer drops non-ASCII letters
    scores = [_rouge_scorer().score(fold_accents(reference), output) for reference in example.references]
    best = max(range(len(scores)), key=lambda k: scores[k]["rougeL"].fmeasure)
    details: dict[str, Any] = {
        kind: {"precision": s.precision, "recall": s.recall, "f": s.fmeasure} for kind, s in scores[best].items()
    }
    details["best_reference"] = example.references[best]
    return ScoreResult(scores[best]["rougeL"].fmeasure, details)
