"""Stored hallucination spans shown in the output they mark: ``[start, end)`` character offsets turned into HTML
in which every character of the output is escaped and only the marks around the spans are ours.

The result goes through ``st.html`` (sanitised again by Streamlit with DOMPurify, and never read as markdown), so
an output holding ``<script>``, ``**bold**`` or a ``javascript:`` link shows as those characters, nothing more.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from evaltune.feedback_ui.safe_text import plain

MARK_STYLE = "background:#ffd6d6;color:inherit;border-bottom:2px solid #c62828;padding:0 1px"
BOX_STYLE = ("white-space:pre-wrap;overflow-wrap:anywhere;font-family:'Source Code Pro',monospace;"
             "font-size:0.875rem;line-height:1.6;background:rgba(128,128,128,0.08);border-radius:0.5rem;"
             "padding:0.75rem 1rem;margin:0 0 1rem 0")


def valid_spans(spans: Any, length: int) -> list[tuple[int, int]]:
    """The spans that can be drawn in a text of ``length`` characters: pairs of ints with
    ``0 <= start < end <= length``, sorted, overlapping ones merged. Anything else (a malformed row, offsets
    past the end of an output that changed) is left out rather than drawn in the wrong place."""
    found: list[tuple[int, int]] = []
    for span in spans or []:
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            continue
        start, end = span
        if type(start) is int and type(end) is int and 0 <= start < end <= length:
            found.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:  # several annotators' spans over one output may overlap
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def span_texts(text: str, spans: Any) -> list[str]:
    """The quoted text of each drawable span, in order."""
    return [text[start:end] for start, end in valid_spans(spans, len(text))]


def highlighted_html(text: str, spans: Any, *, title: str = "unsupported") -> str:
    """``text`` as one escaped block with each span wrapped in ``<mark>``; ``title`` (ours) is the marks'
    tooltip. Returns the HTML, safe to pass to ``st.html``."""
    parts: list[str] = []
    position = 0
    mark_title = html.escape(title, quote=True)
    for start, end in valid_spans(spans, len(text)):
        parts.append(html.escape(text[position:start]))
        parts.append(f'<mark title="{mark_title}" style="{MARK_STYLE}">{html.escape(text[start:end])}</mark>')
        position = end
    parts.append(html.escape(text[position:]))
    return f'<div class="evaltune-output" style="{BOX_STYLE}">{"".join(parts)}</div>'


def merged_spans(span_lists: Iterable[Sequence[Any] | None]) -> list[list[int]]:
    """Every span of several ratings of one output, as one list (overlaps are merged when drawn)."""
    return [list(span) for spans in span_lists for span in (spans or [])]


def show_output(text: str | None, spans: Any = None, *, label: str | None = None, title: str = "unsupported"
                ) -> None:
    """Show an output under ``label`` (ours, not data): with its spans marked when it has any, otherwise as the
    plain wrapped block every other page uses."""
    text = text or ""
    if not valid_spans(spans, len(text)):
        plain(text, label=label)
        return
    if label:
        st.caption(label)
    st.html(highlighted_html(text, spans, title=title))
