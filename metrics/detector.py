"""The offline hallucination detector's calibrated decision: how the grounding signals of one output combine
into its ``grounded_hallucination`` score, and the threshold that flags it.

The constants are chosen by ``bench/validate_hallucination.py --fit`` on calibration data only (the bench says
which); ``metrics/scorers/hallucination.py`` applies them.
"""

from __future__ import annotations

import math
from typing import Any

from evaltune.metrics.grounding import Grounding
from evaltune.metrics.records import ScoreResult

# A sentence is supported when its best MiniLM cosine to a source sentence (or adjacent pair) reaches this.
# It is high because faithful paraphrases average 0.82 while a changed number keeps about 0.89: the
# best cut for similarity alone is a poor one (AUROC 0.64), which is why it is only one signal.
SUPPORT_THRESHOLD = 0.838
# grounded_hallucination = sigmoid(bias + Σ weight · signal), signals in [0, 1]: the rate of unsupported
# entities, dissimilarity = 1 - the lowest sentence similarity, negation_flip = 0 or 1. With these
# weights a negation flip alone scores 0.69, an unsupported-entity rate above about 0.15 flags an
# otherwise similar output, and dissimilarity alone needs a sentence below 0.375 cosine.
COMBINATION_BIAS = -0.5
COMBINATION_WEIGHTS = {"unsupported_entities": 2.3, "dissimilarity": 0.8, "negation_flip": 1.3}
DECISION_THRESHOLD = 0.5  # grounded_hallucination at or above this flags the output as hallucinated


def combine(signals: dict[str, float]) -> float:
    """The grounded_hallucination score of one output from its signals (each in [0, 1]; 1 = worse)."""
    z = COMBINATION_BIAS + sum(COMBINATION_WEIGHTS[name] * signals[name] for name in COMBINATION_WEIGHTS)
    return 1.0 / (1.0 + math.exp(-z))


def grounded_result(entity_rate: float, unsupported: list[dict[str, str]], grounding: Grounding,
                     contradiction: float | None) -> ScoreResult:
    signals = {
        "unsupported_entities": entity_rate,
        "dissimilarity": max(0.0, 1.0 - grounding.min_similarity),
        "negation_flip": float(bool(grounding.negation_flips)),
    }
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
