"""An output compared with its reference as what it is: equal answers, equal JSON, equal code, equal sets of items,
equal quantities; and, when it does not match, which of its parts the sources contradict or do not contain.

``match_reference`` is the answer matching of the quality scorers (``exact_match``, ``answer_match``: case,
accents and punctuation folded, whole words only) widened to structured answers. ``compare_structure`` checks a
structured output part by part: JSON leaves by key path (or, against prose, by their values), short list items
as a set, numbers with units by value, code by its tokens.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evaltune.metrics.grounding import is_negated
from evaltune.metrics.numbers import numbers_in, same_number
from evaltune.metrics.quantities import Quantity, has_equal, quantities_in
from evaltune.metrics.structured import (
    SHORT_ITEM_WORDS,
    bare_list_items,
    canonical,
    code_tokens,
    json_equal,
    json_leaves,
    leaf_unit,
    list_items,
    looks_like_code,
    parse_json,
    same_items,
    same_value,
    shape,
)
from evaltune.metrics.text import contains_phrase, normalize

MatchKind = Literal["exact", "json", "code", "list", "quantity", "answer"]
Verdict = Literal["supported", "contradicted", "unsupported"]
# Words that say nothing on their own when a value is looked for in prose ("Lisbon, Portugal" needs both names).
_FILLER = frozenset(["a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "for", "by", "with", "is"])


@dataclass(frozen=True)
class Match:
    """How an output matched a reference. ``guarded`` matches (a quantity or an answer found inside the output)
    hold only if the output adds no name or number of its own: the caller checks that."""

    kind: MatchKind
    reference: str

    @property
    def guarded(self) -> bool:
        return self.kind in ("quantity", "answer")


def match_reference(output: str, references: Sequence[str]) -> Match | None:
    """The first way ``output`` matches one of ``references``, strictest first; None when it matches none."""
    text = normalize(output)
    for check in (_exact, _json, _code, _items, _quantity, _answer):
        for reference in references:
            kind = check(output, text, reference)
            if kind is not None:
                return Match(kind, reference)
    return None


def _exact(_output: str, text: str, reference: str) -> MatchKind | None:
    return "exact" if text and text == normalize(reference) else None


def _json(output: str, _text: str, reference: str) -> MatchKind | None:
    ours, theirs = parse_json(output), parse_json(reference)
    return "json" if ours is not None and theirs is not None and json_equal(ours, theirs) else None


def _code(output: str, _text: str, reference: str) -> MatchKind | None:
    tokens = code_tokens(output) if looks_like_code(output) else []
    return "code" if tokens and tokens == code_tokens(reference) else None


def _items(output: str, _text: str, reference: str) -> MatchKind | None:
    return "list" if same_items(list_items(output), list_items(reference)) else None


def _quantity(output: str, _text: str, reference: str) -> MatchKind | None:
    expected, said = quantities_in(reference), quantities_in(output)
    if not expected or not all(has_equal(q, said) for q in expected) or _contradicted(said, expected):
        return None
    return None if _negated(output, reference) else "quantity"


def _answer(output: str, _text: str, reference: str) -> MatchKind | None:
    if not contains_phrase(output, reference) or _negated(output, reference):
        return None
    return "answer"


def _negated(output: str, reference: str) -> bool:
    # "It is not 100 °C" contains the reference but denies it: no match, the detector decides.
    return is_negated(output) and not is_negated(reference)


def _contradicted(said: list[Quantity], expected: list[Quantity]) -> list[Quantity]:
    """The quantities of ``said`` of a dimension ``expected`` has, equal to none of those."""
    dimensions = {q.dimension for q in expected}
    return [q for q in said if q.dimension in dimensions and not has_equal(q, expected)]


def excused_numbers(output: str, sources: Sequence[str]) -> list[float]:
    """The numbers of the output's quantities that equal a source quantity in another unit ("100" of "100 °C"
    when a source says "212 °F"): the entity check, which compares bare numbers, would call them unsupported."""
    known = [q for source in sources for q in quantities_in(source)]
    return [q.number for q in quantities_in(output) if has_equal(q, known)]


# --- part by part ---


@dataclass(frozen=True)
class PartCheck:
    """One part of a structured output and what the sources say of it (``expected``: the source's value)."""

    unit: str
    verdict: Verdict
    expected: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "verdict": self.verdict, **({"expected": self.expected} if self.expected else {})}


@dataclass(frozen=True)
class Structure:
    """A structured output checked part by part (``parts``), or, for code, by token similarity to the closest
    code in the sources (``similarity``; None when no source holds code: nothing to compare it with)."""

    checked_as: str
    parts: tuple[PartCheck, ...] = ()
    similarity: float | None = None
    closest: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def wrong_share(self) -> float:
        """The share of parts the sources contradict or do not contain."""
        return sum(p.verdict != "supported" for p in self.parts) / len(self.parts) if self.parts else 0.0


def compare_structure(output: str, references: Sequence[str], context: str | None, prompt: str) -> Structure | None:
    """The part-by-part check of a structured output against its sources; None when the output is prose (or a
    list of sentences) with no number the references contradict: the detector checks those."""
    sources = [*references, *([context] if context else [])]
    kind = shape(output)
    if kind == "json":
        return _json_parts(output, sources, prompt)
    if kind == "code":
        return _code_similarity(output, sources)
    # Bullets are a list whatever the reference; a comma-separated answer only where a reference is one too
    # ("Yes, it is" is prose).
    items = bare_list_items(output) or (list_items(output) if any(list_items(r) for r in references) else [])
    if items and all(len(item.split()) <= SHORT_ITEM_WORDS for item in items):
        return _item_parts(items, sources, prompt)
    return _quantity_parts(output, references)


def _json_parts(output: str, sources: Sequence[str], prompt: str) -> Structure | None:
    structured = [value for value in map(parse_json, sources) if value is not None]
    known: dict[str, list[Any]] = {}
    for value in structured:
        for path, leaf in json_leaves(value):
            known.setdefault(path.lower(), []).append(leaf)
    prose = [s for s in sources if parse_json(s) is None] + [prompt]
    parts = []
    for path, value in json_leaves(parse_json(output)):
        unit = leaf_unit(path, value)
        expected = known.get(path.lower())
        if expected is not None:
            verdict: Verdict = "supported" if any(same_value(value, e) for e in expected) else "contradicted"
            parts.append(PartCheck(unit, verdict, None if verdict == "supported" else str(expected[0])))
            continue
        found = value_found(value, [*(str(v) for vs in known.values() for v in vs), *prose])
        if found is not None:  # true, false and null say nothing checkable outside their key
            parts.append(PartCheck(unit, "supported" if found else "unsupported"))
    return Structure("json", tuple(parts)) if parts else None


def value_found(value: Any, texts: Sequence[str]) -> bool | None:
    """True when a JSON value (or a short list item) occurs in ``texts``: a number by value, text by its words;
    None for true, false and null."""
    kind, canon = canonical(value)
    joined = "\n".join(texts)
    if kind == "literal":
        return None
    if kind == "number":
        return any(same_number(canon, n) for n in numbers_in(joined))
    if contains_phrase(joined, str(value)):
        return True
    present = set(normalize(joined).split())
    numbers = numbers_in(joined)
    words = [w for w in str(canon).split() if w not in _FILLER]
    return bool(words) and all(
        w in present or any(same_number(n, m) for n in numbers_in(w) for m in numbers) for w in words)


def _item_parts(items: list[str], sources: Sequence[str], prompt: str) -> Structure:
    listed = [item for source in sources for item in list_items(source)]
    if listed:  # the reference is a list: the items compare as a set
        wanted = {normalize(item) for item in listed}
        parts = [PartCheck(item, "supported" if normalize(item) in wanted else "unsupported") for item in items]
        return Structure("list", tuple(parts), notes={"compared_with": "the reference's items, as a set"})
    found = [value_found(item, [*sources, prompt]) for item in items]
    parts = [PartCheck(item, "supported" if ok else "unsupported") for item, ok in zip(items, found, strict=True)]
    return Structure("list", tuple(parts), notes={"compared_with": "the words of the context and references"})


def _code_similarity(output: str, sources: Sequence[str]) -> Structure:
    code = [s for s in sources if looks_like_code(s)]
    if not code:
        return Structure("code")
    ours = code_tokens(output)
    scored = [(difflib.SequenceMatcher(None, ours, code_tokens(s), autojunk=False).ratio(), s) for s in code]
    similarity, closest = max(scored, key=lambda pair: pair[0])
    return Structure("code", similarity=similarity, closest=closest)


def _quantity_parts(output: str, references: Sequence[str]) -> Structure | None:
    """The output's numbers that a short reference answer contradicts: a quantity of the reference's dimension
    with another value ("90 °C" for "100 degrees Celsius"), or, for a bare-number answer ("31"), numbers none of
    which is it. None when nothing is contradicted: the detector checks the rest."""
    expected = [q for r in references for q in quantities_in(r)]
    said = quantities_in(output)
    wrong = _contradicted(said, expected)
    if wrong:
        parts = [PartCheck(q.text, "contradicted" if q in wrong else "supported",
                           ", ".join(e.text for e in expected if e.dimension == q.dimension) if q in wrong else None)
                 for q in said if q.dimension in {e.dimension for e in expected}]
        return Structure("quantity", tuple(parts))
    answers = [r for r in references if _is_number_answer(r)]
    numbers = numbers_in(output)
    if answers and numbers and not any(same_number(n, a) for r in answers for a in numbers_in(r) for n in numbers):
        parts = [PartCheck(_number_text(n), "contradicted", " / ".join(answers)) for n in numbers]
        return Structure("number", tuple(parts))
    return None


def _is_number_answer(reference: str) -> bool:
    """A reference that is one number and little else ("31", "31 years", "about 1,200")."""
    return len(numbers_in(reference)) == 1 and len(normalize(reference).split()) <= 3


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
