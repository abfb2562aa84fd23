"""The Rate page's form as one custom component: the output(s), every choice with its key, spans marked in the
output by selecting text, and the optional fields, sent to Python as one event when the annotator submits.

Keys (shown on the form): 1-5 score, y mark sentences (arrows and Space), n no unsupported claims, a/b/t/x for
A/B/tie/both bad, Enter submit, s skip. A mouse click on a score or an A/B choice submits at once. The component
runs in the page (``isolate_styles=False``: text selection in a shadow root is not portable); its CSS is scoped
under ``.evaltune-rate`` and it sets stored text only as ``textContent``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from evaltune.feedback_ui.answers import CHOICE_LABELS, LIKERT_LABELS

CHOICE_KEYS = {"a": "a", "b": "b", "tie": "t", "both_bad": "x"}
SUBMIT_LABELS = {False: "Submit rating", True: "Submit choice"}
_HERE = Path(__file__).resolve().parent

_mount = st.components.v2.component(
    "evaltune_rating_form",
    js=(_HERE / "rating_form.js").read_text(encoding="utf-8"),
    css=(_HERE / "rating_form.css").read_text(encoding="utf-8"),
    isolate_styles=False,
)


@dataclass(frozen=True)
class FormEvent:
    """What the annotator sent: ``kind`` is "submitted" or "skipped"; ``values`` as the form sent them."""

    kind: str
    item: int
    values: dict[str, Any]


def form_event(key: str) -> FormEvent | None:
    """The event the form with ``key`` just sent (read in its callback), or None."""
    current = st.session_state.get(key) or {}
    for kind in ("submitted", "skipped"):
        values = current.get(kind)
        if isinstance(values, dict) and isinstance(values.get("item"), int):
            return FormEvent(kind, values["item"], values)
    return None


def rating_form(*, key: str, item: int, outputs: list[str], pairwise: bool, anchor: str,
                on_event: Callable[[], None], notice: int = 0) -> None:
    """Show the form for reservation ``item``; ``on_event`` runs (before the next script run) when it sends.

    ``anchor`` is the id of the element to scroll to when the next item replaces this one; ``notice`` changes
    when the store refused the last answer, which lets the annotator correct and send it again."""
    data = {
        "item": item, "outputs": outputs, "pairwise": pairwise, "anchor": anchor,
        "submit_label": SUBMIT_LABELS[pairwise], "notice": {"n": notice} if notice else None,
        "likert": list(LIKERT_LABELS.items()),
        "choices": [[value, label, CHOICE_KEYS[value]] for value, label in CHOICE_LABELS.items()],
    }
    _mount(key=key, data=data, on_submitted_change=on_event, on_skipped_change=on_event)
