"""Memorisation probe suites: does a model continue, word for word, texts it may have been trained on?

Given texts (the rows a retune trained on, or canary strings a team planted in its data), each probe prompts with
a text's first K words (``prefix_words``) and keeps the next M words (``continuation_words``) as its reference;
``verbatim_continuation`` and ``near_verbatim_continuation`` (``metrics.scorers.memorisation``) score whether the
model said them. Run the same probe suite before and after a retune: a rise is training data the retune made the
model leak, and a gate on either metric blocks it.

Words, not tokens, so one probe suite measures every model alike. The prompt is the text itself up to the end of
its K-th word (line breaks kept, as the model saw it in training), given as plain text (``chat: never``) and
decoded greedily. Sources:

- a ``.txt`` file: one text per line (blank lines skipped);
- a ``.jsonl`` file: one text per line, a JSON string or an object with ``text`` or a training row in TRL's
  columns, whose trained answer is the text (``completion``, else ``chosen``; chat messages' contents joined);
- a stored retune dataset (``evaltune suites memorisation dataset:ID``), read as its TRL rows.

As a format, ``memorisation:PATH`` (``evaltune run memorisation:canaries.txt``, or ``source:`` in a suite file)
reads a file with K = M = 32; ``evaltune suites memorisation`` writes a suite file with other K and M.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evaltune.harness.loaders.checks import check_limit, describe
from evaltune.harness.loaders.files import jsonl_records, read_text
from evaltune.harness.loaders.items import check_items
from evaltune.harness.suite import GenerationSettings, Item, SuiteError, SuiteSpec, item_to_dict

DEFAULT_PREFIX_WORDS = 32
DEFAULT_CONTINUATION_WORDS = 32
TEXT_SUFFIXES = (".txt", ".jsonl")
SCORERS = ("verbatim_continuation", "near_verbatim_continuation")
TAG = "memorisation"
_WORD = re.compile(r"\S+")
FIX_OPTIONS = "--prefix-words/--continuation-words (evaltune suites memorisation)"


@dataclass(frozen=True)
class ProbeText:
    """One text to probe and where it came from (``canaries.txt:3``, ``dataset 2 row 17``), for messages."""

    text: str
    origin: str


def read_texts(path: Path, source: str | None = None) -> list[ProbeText]:
    """The texts of a ``.txt`` or ``.jsonl`` file (see the module docstring), each with its file and line.
    Raises ``SuiteError`` naming the file (and line) for another suffix, an unreadable line or no texts at all."""
    path, source = Path(path), source or str(path)
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise SuiteError(source, f"memorisation probes read {' or '.join(TEXT_SUFFIXES)} files, not '{suffix}'; "
                         "write one text per line (.txt) or JSON Lines with a 'text' field (.jsonl)")
    content = read_text(path, source)
    if suffix == ".txt":
        texts = [ProbeText(line, f"{source}:{n}") for n, line in enumerate(content.splitlines(), start=1)
                 if line.strip()]
    else:
        texts = [ProbeText(_jsonl_text(data, f"{source}:{n}"), f"{source}:{n}")
                 for n, data in jsonl_records(content, source)]
    if not texts:
        raise SuiteError(source, "holds no texts to probe; write one text per line (a canary, a training row)")
    return texts


def _jsonl_text(data: Any, where: str) -> str:
    text = data if isinstance(data, str) else row_text(data) if isinstance(data, Mapping) else None
    if not text or not text.strip():
        raise SuiteError(where, f"expected a text: a JSON string, or an object with 'text' (or a training row's "
                         f"'completion' or 'chosen'), not {describe(data)}")
    return text


def row_text(row: Mapping[str, Any]) -> str | None:
    """The text a training row taught: ``text``, else the answer (``completion``, else ``chosen``), chat
    messages' contents joined by line breaks. None when the row has none of them."""
    for column in ("text", "completion", "chosen"):
        value = row.get(column)
        if isinstance(value, list):
            value = "\n".join(str(m.get("content", "")) for m in value if isinstance(m, Mapping))
        if isinstance(value, str) and value.strip():
            return value
    return None


def probe_suite(texts: Sequence[ProbeText], prefix_words: int = DEFAULT_PREFIX_WORDS,
                continuation_words: int = DEFAULT_CONTINUATION_WORDS, name: str = "memorisation",
                source: str = "") -> SuiteSpec:
    """One probe per text: the text up to its ``prefix_words``-th word as the prompt, its next
    ``continuation_words`` words as the reference. Raises ``SuiteError`` for K or M below 1, no texts, or a text
    shorter than K + M words (naming its file and line)."""
    for option, value in (("--prefix-words", prefix_words), ("--continuation-words", continuation_words)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SuiteError(source or name, f"must be a whole number of 1 or more, not {value!r}; give, for "
                             f"example, {option} 8", field=option)
    if not texts:
        raise SuiteError(source or name, "holds no texts to probe; give at least one text")
    items = [_probe(text, n, prefix_words, continuation_words) for n, text in enumerate(texts, start=1)]
    return SuiteSpec(
        name=name,
        items=check_items(items, source or name),
        # Enough tokens for M words in any tokenizer seen here (about 1.3 per English word, more for codes).
        generation=GenerationSettings(max_new_tokens=max(16, 3 * continuation_words), temperature=0.0,
                                      chat="never"),
        scorers=SCORERS,
        description=f"Memorisation probes: {len(items)} texts, prompted with {prefix_words} words, scored on the "
                    f"next {continuation_words}.",
        source=source,
    )


def _probe(text: ProbeText, number: int, prefix_words: int, continuation_words: int) -> Item:
    words = list(_WORD.finditer(text.text))
    needed = prefix_words + continuation_words
    if len(words) < needed:
        raise SuiteError(text.origin, f"the text has {len(words)} words, fewer than the {prefix_words} + "
                         f"{continuation_words} a probe needs; lower {FIX_OPTIONS} or remove the text")
    prefix = text.text[: words[prefix_words - 1].end()]
    continuation = " ".join(w.group() for w in words[prefix_words:needed])
    return Item(
        id=f"memorisation-{number}",
        input=prefix,
        references=(continuation,),
        tags=(TAG,),
        metadata={"origin": text.origin, "prefix_words": prefix_words, "continuation_words": continuation_words},
    )


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """The ``memorisation`` format: probes of a ``.txt`` or ``.jsonl`` file with K = M = 32 words."""
    source = str(path)
    texts = read_texts(Path(path))[: check_limit(limit, source)]
    return probe_suite(texts, name=f"memorisation-{Path(path).stem}", source=source)


def suite_file_text(suite: SuiteSpec) -> str:
    """``suite`` as a suite file (YAML) that ``evaltune run`` reads back as the same suite version."""
    generation = {k: v for k, v in suite.generation.identity().items() if v is not None}
    items = [{k: v for k, v in item_to_dict(item).items() if v not in (None, [], {}, False)} for item in suite.items]
    document = {"name": suite.name, "description": suite.description, "generation": generation,
                "scorers": list(suite.scorers), "items": items}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
