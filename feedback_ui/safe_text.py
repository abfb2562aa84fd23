"""Showing stored text safely: model outputs, prompts and every other stored string are plain text.

Streamlit renders markdown (and so links and images) in ``st.markdown``, ``st.write`` of strings, captions
and widget labels. Text that came from a model, a dataset or a user goes through these helpers instead:
``st.code`` with no language shows it verbatim, escaped by the browser's text rendering, never parsed.
"""

from __future__ import annotations

import html
import re

import streamlit as st

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")
_SAFE_SCHEMES = ("http", "https", "mailto")
# Where markdown takes a URL: a link or image destination ``](url``, a reference definition ``[r]: url``, an
# autolink ``<scheme:...>``.
_DESTINATION = re.compile(r"(\]\(\s*<?)([^)\s>]*)")
_DEFINITION = re.compile(r"(^[ \t]{0,3}\[[^\]]+\]:[ \t]*<?)(\S*)", re.MULTILINE)
_AUTOLINK = re.compile(r"(<)([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^<>\s]*)(?=>)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def plain(text: str | None, *, label: str | None = None, empty: str = "(empty)") -> None:
    """Show ``text`` verbatim in a wrapped code block, under an optional caption ``label`` (ours, not data)."""
    if label:
        st.caption(label)
    st.code(text if text else empty, language=None, wrap_lines=True)


def inline(text: object) -> str:
    """``text`` escaped for use inside markdown we write (a name in a heading, a key in a caption)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text)).replace("\n", " ")


def _safe_url(url: str) -> bool:
    # As a browser reads it: entities decoded, then tabs, newlines and control characters dropped.
    decoded = "".join(ch for ch in html.unescape(url) if ch > " " and ch != "\x7f")
    scheme = _SCHEME.match(decoded)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


def safe_markdown(text: str) -> str:
    """Markdown written by a trusted person (campaign guidelines), with every link or image URL whose scheme is
    not http, https or mailto (``javascript:``, ``data:``, ``vbscript:``, entity-encoded ones) replaced by ``#``.

    Streamlit already shows raw HTML as text when ``unsafe_allow_html`` is off; links are the remaining way
    for markdown to run script or load a page, and Streamlit lets ``data:`` links through.
    """
    def fix(match: re.Match[str]) -> str:
        return match.group(1) + (match.group(2) if _safe_url(match.group(2)) else "#")

    for pattern in (_DESTINATION, _DEFINITION, _AUTOLINK):
        text = pattern.sub(fix, text)
    return text
