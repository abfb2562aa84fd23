"""Output length and Flesch reading ease.

Syllables are counted by a vowel-group heuristic instead of a pronunciation dictionary
(textstat needs cmudict, which is a download): on ordinary English words it is exact about
nine times in ten and off by one otherwise, which moves Flesch scores by a few points, so the
number is for comparing runs, not for matching another tool's value.
"""

from __future__ import annotations

import re

from evaltune.metrics.records import Example, ScoreResult
from evaltune.metrics.registry import scorer

_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*|\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_SOUNDED_ES = ("ses", "zes", "ces", "ges", "xes", "ches", "shes")


def syllables(word: str) -> int:
    """Estimated syllables of one English word (at least 1 for any word with a letter or digit)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 1 if any(ch.isdigit() for ch in word) else 0
    count = len(_VOWEL_GROUP.findall(w))
    if count > 1 and (
        (w.endswith("e") and not w.endswith(("le", "ee", "ye")))  # silent e: "make", but "table", "free"
        or (w.endswith("ed") and not w.endswith(("ted", "ded")))  # "jumped", but "wanted"
        or (w.endswith("es") and not w.endswith(_SOUNDED_ES))  # "makes", but "boxes"
    ):
        count -= 1
    return max(1, count)


def text_words(text: str) -> list[str]:
    return _WORD.findall(text)


def sentence_count(text: str) -> int:
    """Sentences ended by . ! or ? (a trailing fragment without one counts as a sentence)."""
    ends = len(_SENTENCE_END.findall(text))
    trailing = bool(text.strip()) and not _SENTENCE_END.search(text.strip()[-1:] + " ")
    return ends + int(trailing)


def _counts(text: str) -> tuple[int, int, int]:
    """(words, sentences, syllables) of ``text``."""
    found = text_words(text)
    return len(found), max(1, sentence_count(text)), sum(syllables(w) for w in found)


def flesch_reading_ease(text: str) -> float | None:
    """206.835 - 1.015 words/sentence - 84.6 syllables/word; None for text without words."""
    n_words, n_sentences, n_syllables = _counts(text)
    if not n_words:
        return None
    return 206.835 - 1.015 * n_words / n_sentences - 84.6 * n_syllables / n_words


@scorer("length", family="quality")
def length(example: Example) -> ScoreResult:
    """Output length in words (characters and sentences in the details)."""
    text = example.output
    return ScoreResult(float(len(text.split())), {"characters": len(text), "sentences": sentence_count(text)})


@scorer("readability", family="quality")
def readability(example: Example) -> ScoreResult:
    """Flesch reading ease (higher is easier; 60-70 is plain English), syllables by a heuristic."""
    n_words, n_sentences, n_syllables = _counts(example.output)
    if not n_words:
        return ScoreResult(None, {"reason": "no words"})
    ease = 206.835 - 1.015 * n_words / n_sentences - 84.6 * n_syllables / n_words
    grade = 0.39 * n_words / n_sentences + 11.8 * n_syllables / n_words - 15.59
    return ScoreResult(ease, {"words": n_words, "sentences": n_sentences, "syllables": n_syllables,
                              "flesch_kincaid_grade": grade})
