"""The offline hallucination detector's calibrated decision: how the grounding signals of one output combine
into its ``grounded_hallucination`` score, and the threshold that flags it.

The constants are chosen by ``bench/validate_hallucination.py --fit`` on calibration data only (the bench says
which); ``metrics/scorers/hallucination.py`` applies them. What they were validated on, with the figures of each
data set's held-out part, is in the README ("The offline hallucination detector and its validation bench").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from evaltune.metrics.grounding import Grounding
from evaltune.metrics.records import ScoreResult

# A sentence is supported when its best MiniLM cosine to a source sentence (or adjacent pair) reaches this.
# It is high because faithful paraphrases average 0.82 while a changed number keeps about 0.89: the
# best cut for similarity alone is a poor one (AUROC 0.64), which is why it is only one signal.
# (Chosen on the calibrate half of the project's own set; used by context_support, not by the combination.)
SUPPORT_THRESHOLD = 0.838
# grounded_hallucination = sigmoid(bias + Σ weight · signal), each signal in [0, 1] (1 = worse), see SIGNALS.
# Fitted by ``bench/validate_hallucination.py --fit``: a logistic regression on the calibration parts of
# public human-labelled data (each data set weighing the same, each label half of it, L2 = 1), rounded.
# FITTED_ON says on what; the figures the bench prints come from the other (figures) parts only.
COMBINATION_BIAS = -1.76
COMBINATION_WEIGHTS = {"unsupported_entities": 2.38, "dissimilarity": 2.08, "negation_flip": 1.24,
                       "novel_words_x_length": 0.81, "novel_pairs_x_length": 0.93, "source_length": 0.8}
# The data sets whose calibration parts the constants were fitted on: every public one read, the news sets
# included (the held-out benchmarks are summaries of news and other documents), and the own set (it holds
# the swapped names and changed numbers in copied wording that the public sets have few of).
# bench/validate_hallucination.py --fit --limit 1600 gives them back; its leave-one-data-set-out table is the
# measure of transfer to data the fit never saw. Calibration outputs that reached the detector (the others were
# decided by the scorer's exact checks): Q² 285, BEGIN 74, XSumFaith 62, FactCC 41, TruthfulQA 785, own set 76.
FITTED_ON = ("q2", "begin", "xsumfaith", "factcc", "truthfulqa", "evaltune_own")
# The signals the fit weighs (bench/validate_hallucination.py --fit); the others are reported only.
FIT_SIGNALS = tuple(COMBINATION_WEIGHTS)
DECISION_THRESHOLD = 0.5  # grounded_hallucination at or above this flags the output as hallucinated
LONG_SOURCE_WORDS = 1000  # source_length reaches 1 here (log scale): a news article, a meeting transcript


def _source_length(grounding: Grounding) -> float:
    return min(1.0, math.log10(1 + grounding.novelty.source_words) / math.log10(1 + LONG_SOURCE_WORDS))


# Each signal of an output from its unsupported-entity rate and its grounding.
SIGNALS: dict[str, Callable[[float, Grounding], float]] = {
    "unsupported_entities": lambda rate, g: rate,
    "dissimilarity": lambda rate, g: max(0.0, 1.0 - g.min_similarity),  # the weakest sentence
    "mean_dissimilarity": lambda rate, g: max(0.0, 1.0 - g.mean_similarity),
    "negation_flip": lambda rate, g: float(bool(g.negation_flips)),
    "novel_words": lambda rate, g: g.novelty.words,
    "novel_pairs": lambda rate, g: g.novelty.pairs,
    # Novel wording weighs by the source's length: a summary of an article or a reply from a knowledge passage
    # reuses the source's words, while a short reference answer is often restated in new ones.
    "novel_words_x_length": lambda rate, g: g.novelty.words * _source_length(g),
    "novel_pairs_x_length": lambda rate, g: g.novelty.pairs * _source_length(g),
    # Long sources give each output sentence more chances to find a close match: the cut moves with length.
    "source_length": lambda rate, g: _source_length(g),
}


def signals_of(entity_rate: float, grounding: Grounding) -> dict[str, float]:
    """Every signal the combination may weigh, for one output."""
    return {name: measure(entity_rate, grounding) for name, measure in SIGNALS.items()}


def combine(signals: Mapping[str, float], bias: float = COMBINATION_BIAS,
            weights: Mapping[str, float] = COMBINATION_WEIGHTS) -> float:
    """The grounded_hallucination score of one output from its signals (each in [0, 1]; 1 = worse), under the
    shipped constants or others (the bench's re-fits)."""
    z = bias + sum(weight * signals[name] for name, weight in weights.items())
    return 1.0 / (1.0 + math.exp(-z))


def grounded_result(entity_rate: float, unsupported: list[dict[str, str]], grounding: Grounding,
                     contradiction: float | None) -> ScoreResult:
    signals = signals_of(entity_rate, grounding)
    score = combine(signals)
    if contradiction is not None:  # a confident NLI contradiction flags the output on its own
        signals["nli_contradiction"] = contradiction
        score = max(score, contradiction)
    weakest = min(grounding.sentences, key=lambda s: s.similarity, default=None)
    details: dict[str, Any] = {
        "signals": {name: round(value, 4) for name, value in signals.items()},
        "hallucinated": score >= DECISION_THRESHOLD,
        "threshold": DECISION_THRESHOLD,
        "unsupported_entities": unsupported,
        "weakest_sentence": weakest.sentence if weakest else None,
        "negation_flips": [{"output": o, "source": s} for o, s in grounding.negation_flips],
    }
    return ScoreResult(score, details)
