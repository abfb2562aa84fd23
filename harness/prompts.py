"""The one place that decides the prompt a model is given, for the runner, every backend and retune.

    prompt = render_prompt(item, suite.generation, backend.accepts)   # text or chat messages
    fed = backend.model_input(prompt)                                 # what the model reads

``render_prompt`` puts the item's context in front of its input, adds the suite's system prompt, and picks
chat messages or text from the suite's ``chat`` setting and what the model takes (``Accepts``). Retune asks
``training_prompt`` for the prompt of a rated output; it builds it with the same code, so a training row's
prompt is what the model was evaluated on: the same text, or the messages whose chat template gave that text.
"""

from __future__ import annotations

import json
from typing import Any

from evaltune.harness.backends.base import Accepts, Backend, BackendError, Prompt
from evaltune.harness.suite import GenerationSettings, Item, Message


class PromptError(BackendError):
    """An item cannot be put to this model in the form its suite asks for; the message names the item and the fix."""


def render_prompt(item: Item, settings: GenerationSettings, accepts: Accepts) -> Prompt:
    """The prompt for ``item``: its context placed, the suite's system prompt added, as chat messages or text.

    Chat messages when the item's input is messages, or the suite says ``chat: always``, or ``chat: auto`` and
    the model takes chat; else text, with the system prompt as a first paragraph. Raises ``PromptError`` when
    the model cannot take the form that needs (messages to a tokenizer without a chat template)."""
    return _build(item, settings, chat=_wants_chat(item, settings, accepts))


def prompt_for(backend: Backend, item: Item, settings: GenerationSettings) -> Prompt:
    """What ``backend`` feeds its model for ``item``: ``render_prompt``'s choice, through the model's chat
    template where the prompt is messages."""
    return backend.model_input(render_prompt(item, settings, backend.accepts))


def training_prompt(
    stored: str, item: Item, settings: GenerationSettings, chat: bool | None = None
) -> str | list[dict[str, str]]:
    """The prompt of a rated output in TRL's form: the text the model read, or the chat messages (as
    ``{"role", "content"}`` dicts) that the model's chat template turned into what it read, as TRL will again.

    ``stored`` is the generation's stored prompt, which tells the two apart: it is the plain text when the model
    was given text, and the templated text (or, for an endpoint, the messages as JSON) when it was given chat.
    ``chat`` forces one form. Raises ``PromptError`` for text asked of an item whose input is chat messages."""
    if chat is None:
        chat = not (isinstance(item.input, str) and _given_as_text(stored, item, settings))
        sent = _stored_messages(stored) if chat else None
        if sent is not None:
            return sent  # the exact messages an endpoint was sent
    prompt = _build(item, settings, chat=chat)
    if isinstance(prompt, str):
        return prompt
    return [{"role": m.role, "content": m.content} for m in prompt]


def compose_input(item: Item) -> Prompt:
    """The item's input with its context passage in front, unless the input already quotes it."""
    if not item.context:
        return item.input
    if isinstance(item.input, str):
        if item.context in item.input:
            return item.input
        return f"Context:\n{item.context}\n\nQuestion: {item.input}"
    if any(item.context in m.content for m in item.input):
        return item.input
    first, *rest = item.input
    return (Message(first.role, f"Context:\n{item.context}\n\n{first.content}"), *rest)


def render_as_text(prompt: Prompt) -> str:
    """A prompt as the store keeps it: text as it is, chat messages as JSON."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps([{"role": m.role, "content": m.content} for m in prompt], ensure_ascii=False)


def storable_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL; models do emit it. Replace it so both stores keep the same text."""
    return text.replace("\x00", "\ufffd")


def _wants_chat(item: Item, settings: GenerationSettings, accepts: Accepts) -> bool:
    if not isinstance(item.input, str):
        if not accepts.chat:
            raise PromptError(
                f"item '{item.id}' is chat messages, but {accepts.limit}; give the item a text input, "
                "or use a model that takes chat (one with a chat template, or an endpoint in mode auto or chat)"
            )
        return True
    if settings.chat == "always" and not accepts.chat:
        raise PromptError(
            f"item '{item.id}': the suite says chat: always, but {accepts.limit}; "
            "set chat: auto (or never) in the suite, or use a model that takes chat (one with a chat template)"
        )
    if settings.chat == "never" and not accepts.text:
        raise PromptError(
            f"item '{item.id}': the suite says chat: never, but {accepts.limit}; "
            "set chat: auto in the suite, or use the endpoint in mode auto or completions"
        )
    return settings.chat == "always" or (settings.chat == "auto" and accepts.chat)


def _build(item: Item, settings: GenerationSettings, *, chat: bool) -> Prompt:
    composed = compose_input(item)
    system = settings.system_prompt
    if not chat:
        if not isinstance(composed, str):
            raise PromptError(f"item '{item.id}' is chat messages, so its prompt cannot be text; leave chat unset")
        return f"{system}\n\n{composed}" if system else composed
    messages = (Message("user", composed),) if isinstance(composed, str) else composed
    if system and messages[0].role != "system":
        messages = (Message("system", system), *messages)
    return messages


def _given_as_text(stored: str, item: Item, settings: GenerationSettings) -> bool:
    # Equal to the plain rendering means the model read exactly that text; a chat template always adds to it.
    return stored == storable_text(str(_build(item, settings, chat=False)))


def _stored_messages(stored: str) -> list[dict[str, str]] | None:
    try:
        data: Any = json.loads(stored)
    except ValueError:
        return None
    if isinstance(data, list) and data and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in data):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in data]
    return None
