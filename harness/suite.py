"""The suite: a named, versioned list of items plus how to generate and score them.

These are plain frozen records. Loaders (``harness.loaders``) build them from files;
the runner reads them; the store keeps them. A suite's ``content_hash`` is its version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ChatMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Item:
    """One thing to ask the model.

    ``input`` is a prompt string or a list of chat messages. ``choices`` (with ``gold``,
    the indices of the correct choices) makes the item multiple choice: it is scored by
    the log-likelihood of each choice given ``input`` instead of by generation.
    ``expect_abstention`` marks items whose right answer is "I don't know".
    ``group`` ties counterfactual variants together; ``attribute``/``value`` say which
    demographic term this variant uses (for example ``gender``/``female``).
    """

    id: str
    input: str | tuple[Message, ...]
    references: tuple[str, ...] = ()
    context: str | None = None
    choices: tuple[str, ...] = ()
    gold: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    expect_abstention: bool = False
    group: str | None = None
    attribute: str | None = None
    value: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.choices)


@dataclass(frozen=True)
class GenerationSettings:
    """How outputs are generated. Part of a run's identity and of every cache key."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    samples: int = 1
    chat: ChatMode = "auto"
    system_prompt: str | None = None
    batch_size: int = 256  # rows per batch and per store transaction; the hf backend may cap it by memory

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def identity(self) -> dict[str, Any]:
        """The fields that change outputs (batch size does not)."""
        data = asdict(self)
        data.pop("batch_size")
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    items: tuple[Item, ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    scorers: tuple[str, ...] = ()
    description: str = ""
    source: str = ""  # the file it came from, for messages

    @property
    def content_hash(self) -> str:
        """The suite's version: a hash of its items, settings and scorers (not its source path)."""
        payload = {
            "name": self.name,
            "items": [item_to_dict(item) for item in self.items],
            "generation": self.generation.identity(),
            "scorers": list(self.scorers),
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


def item_to_dict(item: Item) -> dict[str, Any]:
    """A JSON-ready dict of an item (the inverse of ``harness.loaders.yaml_suite.item_from_dict``)."""
    data = asdict(item)
    if not isinstance(item.input, str):
        data["input"] = [{"role": m.role, "content": m.content} for m in item.input]
    for key in ("references", "choices", "gold", "tags"):
        data[key] = list(data[key])
    return data


class SuiteError(ValueError):
    """A suite file is invalid. The message names the file, the item and the field, and the fix."""

    def __init__(self, source: str, message: str, item: str | None = None, field: str | None = None):
        self.source, self.item, self.field = source, item, field
        where = source
        if item is not None:
            where += f": item {item}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")
