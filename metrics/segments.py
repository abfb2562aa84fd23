"""The units an output is checked in, one claim each: sentences of prose, and (for structured outputs) their parts.

``grounding.ground`` checks each unit of an output against the source; what counts as a unit is decided here:

- a JSON object or array: one unit per leaf, ``age: 31`` (never its brackets);
- code (fenced, or lines only code writes): its normalised lines, never cut at "." into "sentences";
- a bulleted or numbered list: one unit per item, the marker dropped;
- prose: its sentences; a fenced block inside prose gives its code lines.

No unit is ever only brackets or punctuation (a lone ``}`` claims nothing, so it cannot be "unsupported").
"""

from __future__ import annotations

import re

from evaltune.metrics.sentences import split_sentences
from evaltune.metrics.structured import (
    code_lines,
    has_content,
    json_leaves,
    leaf_unit,
    parse_json,
    shape,
)

_FENCED_BLOCK = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
_ITEM_MARKER = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|[a-z]\))\s+(?=\S)")


def output_units(text: str) -> list[str]:
    """The checkable units of an output, in order; empty when the output says nothing checkable."""
    kind = shape(text)
    if kind == "json":
        units = [leaf_unit(path, value) for path, value in json_leaves(parse_json(text))]
    elif kind == "code":
        units = code_lines(text)
    else:
        units = _prose_units(text)
    return [unit for unit in units if has_content(unit)]


def _prose_units(text: str) -> list[str]:
    """Sentences, list items whole (markers dropped), and the code lines of fenced blocks, in order."""
    units: list[str] = []
    start = 0
    for block in _FENCED_BLOCK.finditer(text):
        units += _lines_units(text[start : block.start()])
        units += code_lines(block.group())
        start = block.end()
    return units + _lines_units(text[start:])


def _lines_units(text: str) -> list[str]:
    units: list[str] = []
    for line in text.splitlines():
        marker = _ITEM_MARKER.match(line)
        if marker:  # an item is one claim; a numbered marker "1." would otherwise become a "sentence"
            units.append(line[marker.end() :].strip())
        else:
            units += split_sentences(line)
    return units
