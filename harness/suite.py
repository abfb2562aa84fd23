"""The suite: a named, versioned list of items plus how to generate and score them.

These are plain frozen records. Loaders (``harness.loaders``) build them from files;
the runner reads them; the store keeps them. A suite's ``content_hash`` is its version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from evaltune.metrics.records import Assertion

if TYPE_CHECKING:
    from evaltune.harness.judges.config import JudgeSpec

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
    ``assertions`` are the checks its output must pass (the suite's ``defaults`` first, then the item's own
    ``assert`` list); a suite file writes them under ``assert``.
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
    assertions: tuple[Assertion, ...] = ()

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.choices)


@dataclass(frozen=True)
class GenerationSettings:
    """How outputs are generated. Part of a run's identity and of every cache key; of a suite version's identity
    only the prompt settings (``prompt_identity``) are, since they change what the model is asked."""

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

    def prompt_identity(self) -> dict[str, Any]:
        """The fields that change the prompt the model reads (the rest change how it answers)."""
        return {"chat": self.chat, "system_prompt": self.system_prompt}

    def output_seed(self, seed: int) -> int:
        """The part of ``seed`` that can change an output: none under greedy decoding, where every seed gives
        the same outputs (so greedy runs share cache entries whatever their seed)."""
        return 0 if self.greedy else seed


@dataclass(frozen=True)
class SettingsOverrides:
    """Generation settings a run sets instead of the suite's (``evaltune run --temperature`` and so on);
    None keeps the suite's own."""

    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    samples: int | None = None

    def __post_init__(self) -> None:
        wrong = [
            ("--temperature", self.temperature, "a number >= 0 (0 = greedy)",
             self.temperature is not None and not self.temperature >= 0),
            ("--top-p", self.top_p, "a number in (0, 1]", self.top_p is not None and not 0 < self.top_p <= 1),
            ("--max-new-tokens", self.max_new_tokens, "a whole number >= 1",
             self.max_new_tokens is not None and self.max_new_tokens < 1),
            ("--samples", self.samples, "a whole number >= 1", self.samples is not None and self.samples < 1),
        ]
        for option, value, wanted, bad in wrong:
            if bad:
                raise ValueError(f"{option} must be {wanted}, not {value!r}")

    def apply(self, settings: GenerationSettings) -> GenerationSettings:
        """``settings`` with every override that is set."""
        changes: dict[str, Any] = {k: v for k, v in asdict(self).items() if v is not None}
        for number in ("temperature", "top_p"):  # 1 and 1.0 must hash alike in cache keys
            if number in changes:
                changes[number] = float(changes[number])
        return replace(settings, **changes)


@dataclass(frozen=True)
class PromptVariant:
    """One named way of asking a suite's items (a suite file's ``prompts:``): ``template`` (Jinja2, over the item's
    fields) turns each text input into the prompt, None leaving it as it is; ``system`` is the system prompt, None
    keeping the suite's own. ``harness.prompt_variants.with_variant`` applies one to a suite."""

    name: str
    system: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    items: tuple[Item, ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    scorers: tuple[str, ...] = ()
    description: str = ""
    source: str = ""  # the file it came from, for messages
    # The prompt variants of a sweep (``prompts:``): none for a suite asked one way. Not part of the content hash:
    # a variant is run as the suite it makes (``with_variant``), whose items and system prompt are.
    variants: tuple[PromptVariant, ...] = ()
    judge: JudgeSpec | None = None  # the suite's ``judge:``: the model that judges its outputs where scorers need one

    @property
    def content_hash(self) -> str:
        """The suite's version: a hash of its name, its items and the prompt settings that shape what each item
        asks (chat mode, system prompt); not its source path. Sampling settings, scorers, seed and item limit
        belong to a run: runs that differ only in those are runs of one suite version, and pair item by item."""
        payload = {
            "name": self.name,
            "items": [item_to_dict(item) for item in self.items],
            "prompt": self.generation.prompt_identity(),
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


def item_to_dict(item: Item) -> dict[str, Any]:
    """A JSON-ready dict of an item with the keys a suite file writes (the inverse of
    ``harness.loaders.items.item_from_dict``). Assertions are under ``assert``, as written, and only when the item
    has some: a suite without assertions keeps the content hash it had before items could carry them."""
    data = asdict(item)
    del data["assertions"]
    if not isinstance(item.input, str):
        data["input"] = [{"role": m.role, "content": m.content} for m in item.input]
    for key in ("references", "choices", "gold", "tags"):
        data[key] = list(data[key])
    if item.assertions:
        data["assert"] = [assertion.to_dict() for assertion in item.assertions]
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
