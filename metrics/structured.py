"""The shape of an output (JSON, code, a list, prose) and its parts, read as what they are rather than as prose.

A JSON answer is its leaves ("age: 31"), a code answer its normalised lines and tokens, a list its items
without their markers, a comma-separated reference ("Paris, Lyon and Marseille") a set of items. Prose is left
to ``sentences.split_sentences``. ``segments.output_units`` cuts an output into the units grounding checks;
``references.match_reference`` and ``references.compare_structure`` compare the parts with a reference.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Literal

from evaltune.metrics.numbers import same_number
from evaltune.metrics.text import normalize

Shape = Literal["json", "code", "list", "prose"]

_WHOLE_FENCE = re.compile(r"^\s*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)\n?[ \t]*```\s*$", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PROSE_FENCES = frozenset(["", "text", "txt", "markdown", "md", "plain"])
# A line that only code writes: a keyword that opens a statement, a line ending in ; or {, a lone closing
# bracket, an arrow, a call, an assignment. Capitalised prose ("Return the form.") matches none of them.
_CODE_LINE = re.compile(
    r"^\s*(?:def|class|import|from\s+[\w.]+\s+import|return|function|const|let|var|fn|func|public|private|"
    r"package|#include|SELECT|INSERT|UPDATE|DELETE|CREATE)\b"
    r"|[;{]\s*$|^\s*[})\]]+[;,]?\s*$|=>|->|\w\([^()]*\)\s*:?\s*$|^\s*[\w.\[\]]+\s*[-+*/]?=[^=]"
)
_CODE_SYMBOL = re.compile(r"[()\[\]{}=;]")
_COMMENT_LINE = re.compile(r"^\s*(?:#(?!include)|//|--\s)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|[a-z]\))\s+(\S.*?)\s*$")
_LIST_SPLIT = re.compile(r"\s*(?:[,;]\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)\s*", re.IGNORECASE)
SHORT_ITEM_WORDS = 5  # a list item or JSON value this short is a name or a value, checked by presence
INTRO_WORDS = 8  # a line before a list this short, ending in ":" and without a number, only introduces it


def has_content(unit: str) -> bool:
    """False for a unit that is only brackets or punctuation (``}``, ``],``, ``---``): it claims nothing."""
    return any(ch.isalnum() for ch in unit)


def unfenced(text: str) -> tuple[str, str | None]:
    """The body of ``text`` when the whole of it is one fenced block, with the fence's language; else (text, None)."""
    match = _WHOLE_FENCE.match(text)
    if match is None:
        return text, None
    return match.group(2), match.group(1).lower()


def parse_json(text: str) -> Any | None:
    """The JSON object or array ``text`` holds (bare or in one fenced block); None for anything else."""
    body = unfenced(text)[0].strip()
    if not body or body[0] not in "{[":
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


def looks_like_code(text: str) -> bool:
    """True for a fenced code block, or text whose lines are mostly lines only code writes."""
    body, language = unfenced(text)
    if language is not None:
        return language not in _PROSE_FENCES or _mostly_code(body)
    return _mostly_code(text)


def _mostly_code(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not _CODE_SYMBOL.search(text):
        return False
    code = sum(bool(_CODE_LINE.search(line)) or bool(_COMMENT_LINE.match(line)) for line in lines)
    return code >= max(1, round(0.6 * len(lines)))


def shape(text: str) -> Shape:
    """What the whole output is: a JSON object or array, code, a bulleted or numbered list, or prose."""
    if parse_json(text) is not None:
        return "json"
    if looks_like_code(text):
        return "code"
    if len(bullet_items(text)) >= 2:
        return "list"
    return "prose"


# --- JSON ---


def json_leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every scalar of ``value`` with its key path (``address.city``); array items share one path
    (``tags[]``), so two arrays with the same items in another order have the same leaves."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in json_leaves(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in json_leaves(item, f"{path}[]")]
    return [(path, value)]


def leaf_unit(path: str, value: Any) -> str:
    """A leaf as a unit to check: ``age: 31``, ``name: Ana``, ``active: true``."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"{path}: {shown}" if path else str(shown)


def canonical(value: Any) -> tuple[str, Any]:
    """A scalar as it compares: numbers (and numeric strings) by value, text normalised, true/false/null as is."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    text = str(value)
    try:
        return ("number", float(text.replace(",", "")))
    except ValueError:
        return ("text", normalize(text))


def same_value(a: Any, b: Any) -> bool:
    """True when two JSON scalars say the same thing: ``31`` and ``"31"``, ``"Bogotá"`` and ``"bogota"``."""
    kind_a, value_a = canonical(a)
    kind_b, value_b = canonical(b)
    if kind_a == kind_b == "number":
        return same_number(value_a, value_b)
    return (kind_a, value_a) == (kind_b, value_b)


def json_equal(a: Any, b: Any) -> bool:
    """Structural equality: the same keys (case folded) with the same values, arrays in any order."""
    def key(leaf: tuple[str, Any]) -> tuple[str, tuple[str, Any]]:
        kind, value = canonical(leaf[1])
        return leaf[0].lower(), (kind, round(value, 9) if kind == "number" else value)

    return Counter(map(key, json_leaves(a))) == Counter(map(key, json_leaves(b)))


# --- code ---


def code_body(text: str) -> str:
    """The code of an output: the fenced blocks' contents when there are fences, else the whole text."""
    blocks = [match.group(2) for match in _FENCE.finditer(text)]
    return "\n".join(blocks) if blocks else text


def code_lines(text: str) -> list[str]:
    """The code's lines with whitespace collapsed; blank lines, comment-only lines and lone brackets dropped."""
    lines = (" ".join(line.split()) for line in code_body(text).splitlines())
    return [line for line in lines if line and has_content(line) and not _COMMENT_LINE.match(line)]


def code_tokens(text: str) -> list[str]:
    """The code's tokens (identifiers, numbers, each symbol): layout and comment lines do not count."""
    return re.findall(r"\w+|[^\w\s]", "\n".join(code_lines(text)))


# --- lists ---


def bullet_items(text: str) -> list[str]:
    """The items of a bulleted or numbered list in ``text``, markers dropped (empty when there is no list)."""
    items = [match.group(1) for match in map(_BULLET.match, text.splitlines()) if match]
    return items if len(items) >= 2 else []


def bare_list_items(text: str) -> list[str]:
    """The items of ``text`` when it is a bulleted or numbered list and nothing else but, at most, a short line
    that introduces it ("Here are the three cities:"); empty otherwise: prose around a list makes claims of its
    own ("Paris, founded in 12 BC, comes first:"), which the detector checks."""
    items = bullet_items(text)
    others = [line.strip() for line in text.splitlines() if line.strip() and not _BULLET.match(line)]
    if not items or len(others) > 1 or (others and not _is_intro(others[0])):
        return []
    return items


def _is_intro(line: str) -> bool:
    return line.endswith(":") and len(line.split()) <= INTRO_WORDS and not any(ch.isdigit() for ch in line)


def list_items(text: str) -> list[str]:
    """The items of a list answer: a JSON array of scalars, bullets alone, or a short comma-separated list
    ("Paris, Lyon and Marseille"); empty when ``text`` is not one."""
    value = parse_json(text)
    if isinstance(value, list):
        return [str(v) for v in value if not isinstance(v, (dict, list))] if len(value) >= 2 else []
    bullets = bare_list_items(text)
    if bullets:
        return bullets
    body = text.strip().rstrip(".")
    if "\n" in body or re.search(r"[.!?]\s", body):
        return []
    items = [item.strip() for item in _LIST_SPLIT.split(body) if item.strip()]
    short = all(len(item.split()) <= SHORT_ITEM_WORDS for item in items)
    return items if len(items) >= 2 and short else []


def same_items(a: list[str], b: list[str]) -> bool:
    """True when two lists hold the same items, in any order (normalised: case, accents, articles)."""
    return len(a) >= 2 and Counter(map(normalize, a)) == Counter(map(normalize, b))
