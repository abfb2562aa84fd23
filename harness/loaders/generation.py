"""The ``generation:`` block of a suite file, checked field by field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, get_args

from evaltune.harness.loaders.checks import check_keys, describe
from evaltune.harness.suite import ChatMode, GenerationSettings, SuiteError

GENERATION_KEYS = frozenset(f.name for f in dataclasses.fields(GenerationSettings))
CHAT_MODES: tuple[str, ...] = get_args(ChatMode)

# A check takes (value, source, field) and returns the value to store, or raises SuiteError.
Check = Callable[[Any, str, str], Any]


def generation_from_dict(
    data: Any, source: str, base: GenerationSettings | None = None
) -> GenerationSettings:
    """Settings from a ``generation:`` mapping; keys it leaves out keep ``base``'s values (or defaults)."""
    base = base or GenerationSettings()
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise SuiteError(source, f"must be a mapping of settings, not {describe(data)}", field="generation")
    check_keys(data, GENERATION_KEYS, source, what="generation setting")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        changes[key] = _CHECKS[key](value, source, f"generation.{key}")
    return dataclasses.replace(base, **changes)


def _whole(minimum: int) -> Check:
    def check(value: Any, source: str, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SuiteError(
                source, f"must be a whole number >= {minimum}, not {describe(value)}", field=field
            )
        return value

    return check


def _temperature(value: Any, source: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SuiteError(source, f"must be a number >= 0 (0 = greedy), not {describe(value)}", field=field)
    return float(value)


def _top_p(value: Any, source: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SuiteError(source, f"must be a number in (0, 1], not {describe(value)}", field=field)
    return float(value)


def _stop(value: Any, source: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise SuiteError(source, f"must be a list of non-empty texts, not {describe(value)}", field=field)
    return tuple(values)


def _chat(value: Any, source: str, field: str) -> str:
    if value not in CHAT_MODES or isinstance(value, bool):
        # YAML 1.1 reads yes/no/on/off as booleans, which is the usual way to get here.
        raise SuiteError(
            source,
            f"must be one of {', '.join(CHAT_MODES)} (quoted if need be), not {describe(value)}",
            field=field,
        )
    return str(value)


def _system_prompt(value: Any, source: str, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SuiteError(source, f"must be text or null, not {describe(value)}", field=field)
    return value or None


_CHECKS: dict[str, Check] = {
    "max_new_tokens": _whole(1),
    "temperature": _temperature,
    "top_p": _top_p,
    "stop": _stop,
    "samples": _whole(1),
    "chat": _chat,
    "system_prompt": _system_prompt,
    "batch_size": _whole(1),
}

# What each setting does, in the words editors show beside it (harness/suite_schema.py builds the JSON Schema).
GENERATION_HELP: dict[str, str] = {
    "max_new_tokens": "Most tokens to generate per output: a whole number >= 1.",
    "temperature": "Sampling temperature: a number >= 0; 0 is greedy decoding (the same output every time).",
    "top_p": "Nucleus sampling: sample from the most likely tokens whose probabilities add up to this; "
             "a number in (0, 1], 1 keeps them all.",
    "stop": "Texts that end an output where the model writes them: one text or a list.",
    "samples": "Outputs per item: a whole number >= 1; they differ only when temperature > 0.",
    "chat": "Apply the model's chat template: auto (when the model has one), always, or never.",
    "system_prompt": "Text given before every item's input: a system message in chat, a first paragraph "
                     "otherwise; null for none.",
    "batch_size": "Rows per batch and per store transaction: a whole number >= 1 (the hf backend may lower it "
                  "to fit memory). Does not change outputs.",
}
