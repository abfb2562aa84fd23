"""The two checks ``grounded_hallucination`` makes before its detector: does the output match its reference, and,
for a structured output, which of its parts do the sources contradict.

Both are exact comparisons (``metrics.references``), so their verdicts need no calibration: a matching answer
scores 0, and a structured output with any part the sources contradict or lack is flagged, its score rising
with the share of such parts.
"""

from __future__ import annotations

from typing import Any

from evaltune.metrics.detector import DECISION_THRESHOLD
from evaltune.metrics.numbers import numbers_in, same_number
from evaltune.metrics.records import Example, ScoreResult
from evaltune.metrics.references import compare_structure, excused_numbers, match_reference
from evaltune.metrics.scorers.entities import source_texts
from evaltune.metrics.structured import shape

CODE_NOT_COMPARABLE = ("the output is code and neither its reference nor its context holds code to compare it "
                       "with; check code with an assertion that runs it, or give a code reference")


def reference_match(example: Example, entities: ScoreResult) -> ScoreResult | None:
    """Score 0 when the output matches one of its references (equal, the same JSON, the same code, the same items,
    the same quantity, or the reference answer inside it adding no name or number of its own); else None."""
    match = match_reference(example.output, example.references)
    if match is None:
        return None
    if match.guarded and _adds_claims(example, entities):
        return None
    return ScoreResult(0.0, {"signal": "reference_match", "match": match.kind, "matched_reference": match.reference,
                             "checked_as": shape(example.output), "hallucinated": False,
                             "threshold": DECISION_THRESHOLD})


def _adds_claims(example: Example, entities: ScoreResult) -> bool:
    """True when the output names an entity or a number its sources lack ("Paris, founded by Julius Caesar"), a
    number being excused when it is a source's quantity in another unit ("100 °C" for "212 °F")."""
    excused = excused_numbers(example.output, source_texts(example))
    for mention in entities.details.get("unsupported", []):
        values = numbers_in(mention["text"])
        if not values or not all(any(same_number(v, e) for e in excused) for v in values):
            return True
    return False


def structural_result(example: Example) -> ScoreResult | None:
    """The part-by-part verdict on a structured output (JSON, code, short list items, a number the reference
    contradicts); None for prose, which the detector scores."""
    structure = compare_structure(example.output, example.references, example.context, example.prompt)
    if structure is None:
        return None
    details: dict[str, Any] = {"signal": "structure", "checked_as": structure.checked_as, **structure.notes}
    if structure.checked_as == "code":
        if structure.similarity is None:
            return ScoreResult(None, {**details, "not_applicable": True, "reason": CODE_NOT_COMPARABLE})
        value = 1.0 - structure.similarity
        details |= {"token_similarity": round(structure.similarity, 4), "closest": structure.closest}
    else:
        share = structure.wrong_share
        # Any part the sources contradict or lack flags the output; more of them score higher.
        value = 0.0 if share == 0 else DECISION_THRESHOLD + (1.0 - DECISION_THRESHOLD) * share
        details["parts"] = [part.as_dict() for part in structure.parts]
    return ScoreResult(value, {**details, "hallucinated": value >= DECISION_THRESHOLD,
                               "threshold": DECISION_THRESHOLD})
