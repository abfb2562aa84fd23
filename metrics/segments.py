"""The units an output is checked in, one claim each: sentences of prose, and (for structured outputs) their parts.

``grounding.ground`` checks each unit of an output against the source; what counts as a unit is decided here.
"""

from __future__ import annotations

from evaltune.metrics.sentences import split_sentences


def output_units(text: str) -> list[str]:
    """The checkable units of an output, in order; empty when the output says nothing checkable."""
    return split_sentences(text)
