"""Items from plain dicts (YAML, JSONL, CSV rows, dataset rows), strictly checked.

An item dict has these keys (only ``id`` and ``input`` are required)::

    id                 text (a whole number is accepted and turned into text); unique in the suite
    input              text, or a list of {role: system|user|assistant, content: text} messages
    references         list of accepted answers (one text is taken as a list of one; a lone number is refused)
    context            text or null: the passage the answer must come from
    choices            list of at least two texts: makes the item multiple choice
    gold               list of indices into choices (one index is accepted); required with choices;
                       an explicit empty list means "no choice is correct" (CrowS-Pairs-style pairs)
    tags               list of texts (one text is accepted)
    expect_abstention  true when the right answer is "I don't know" (then no references)
    group              counterfactual group id; variants of one group differ in one demographic term
    attribute, value   which term this variant uses, e.g. gender / female (value required with group)
    metadata           mapping of anything JSON can hold
    assert             list of assertions the output must pass, e.g. {type: contains, value: "812"}
                       (types and their fields: ``metrics.assertions.ASSERTION_TYPES``); not on multiple-choice
                       items, which generate no text

No text field may hold more than ``max_item_chars()`` characters (1,000,000 unless
``EVALTUNE_MAX_ITEM_CHARS`` says otherwise): a prompt that long is a mistake (a file pasted into
a cell), and refusing it at load time is cheaper than failing in the tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from evaltune import settings
from evaltune.harness.loaders.checks import check_keys, describe
from evaltune.harness.suite import Item, Message, Role, SuiteError
from evaltune.metrics.records import Assertion

# The keys an item dict may hold: Item's fields, with its assertions written as promptfoo writes them.
ITEM_KEYS = frozenset({f.name for f in dataclasses.fields(Item)} - {"assertions"} | {"assert"})
ROLES: tuple[str, ...] = get_args(Role)
MAX_ITEM_CHARS_ENV = "EVALTUNE_MAX_ITEM_CHARS"


def max_item_chars() -> int:
    """The most characters one text field of an item may hold: ``$EVALTUNE_MAX_ITEM_CHARS`` or 1,000,000."""
    try:
        return settings.max_item_chars()
    except settings.SettingError as error:
        raise SuiteError(MAX_ITEM_CHARS_ENV, str(error).split(": ", 1)[1]) from None


class _Fields:
    """Typed access to one item dict; each failed check raises a SuiteError naming the field."""

    def __init__(self, data: Mapping[str, Any], source: str, label: str):
        self.data, self.source, self.label = data, source, label
        self.max_chars = max_item_chars()

    def fail(self, key: str, message: str) -> SuiteError:
        return SuiteError(self.source, message, item=self.label, field=key)

    def fit(self, key: str, text: str) -> str:
        """``text`` unchanged, or an error when it is longer than an item's text may be."""
        if len(text) > self.max_chars:
            raise self.fail(
                key,
                f"is {len(text):,} characters, over the limit of {self.max_chars:,}; shorten it "
                f"(or set {MAX_ITEM_CHARS_ENV} higher)",
            )
        return text

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None or not value.strip():
            raise self.fail(key, f"'{key}' is required; add a non-empty '{key}' to this item")
        return value

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # ids and answers such as 1969 are often written unquoted
        if not isinstance(value, str):
            raise self.fail(key, f"must be text, not {describe(value)}; quote it")
        return self.fit(key, value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        values = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        if not isinstance(values, list):
            raise self.fail(key, f"must be a list of texts, not {describe(value)}")
        out = []
        for n, entry in enumerate(values):
            if isinstance(entry, int) and not isinstance(entry, bool):
                entry = str(entry)
            if not isinstance(entry, str) or not entry.strip():
                raise self.fail(key, f"entry {n} must be non-empty text, not {describe(entry)}; quote it")
            out.append(self.fit(key, entry))
        return tuple(out)

    def indices(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key)
        values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise self.fail(
                key, f"must be a list of choice indices (0 = first choice), not {describe(value)}"
            )
        return tuple(values)

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {describe(value)}")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.fail(key, f"must be a mapping with text keys, not {describe(value)}")
        try:
            # Plain JSON values only: the content hash and the store serialise them.
            text = json.dumps(value)
        except (TypeError, ValueError):
            raise self.fail(
                key,
                "must hold only JSON values (text, numbers, booleans, lists, mappings); quote dates",
            ) from None
        return dict(json.loads(self.fit(key, text)))


def item_label(data: Any, position: int) -> str:
    """How messages name an item: its id when it has a usable one, else its position ("#12")."""
    if isinstance(data, Mapping):
        item_id = data.get("id")
        if isinstance(item_id, (str, int)) and not isinstance(item_id, bool) and str(item_id):
            return str(item_id)
    return f"#{position}"


def item_from_dict(data: Any, source: str, position: int) -> Item:
    """Build an ``Item`` from a dict with the keys above, or raise ``SuiteError``.

    ``position`` is the 1-based place of the item in its list, used to name it when it has no id.
    """
    label = item_label(data, position)
    if not isinstance(data, Mapping):
        raise SuiteError(source, f"an item must be a mapping of keys, not {describe(data)}", item=label)
    check_keys(data, ITEM_KEYS, source, item=label, what="item key")
    fields = _Fields(data, source, label)
    item_id = fields.required_text("id")
    choices = fields.texts("choices")
    item = Item(
        id=item_id,
        input=_input(fields, multiple_choice=bool(choices)),
        references=_references(fields),
        context=fields.text("context"),
        choices=choices,
        gold=_gold(fields, choices),
        tags=fields.texts("tags"),
        expect_abstention=fields.flag("expect_abstention"),
        group=fields.text("group"),
        attribute=fields.text("attribute"),
        value=fields.text("value"),
        metadata=fields.mapping("metadata"),
        assertions=assertions_from_yaml(data.get("assert"), source, item=label),
    )
    _check_consistency(item, fields)
    return item


def assertions_from_yaml(value: Any, source: str, *, item: str | None = None,
                         field: str = "assert") -> tuple[Assertion, ...]:
    """The assertions of an ``assert`` list (an item's, or ``defaults.assert``), each checked completely by
    ``metrics.assertions.assertion_from_dict``; a bad one raises ``SuiteError`` naming the file, the item and the
    field within the list, such as ``assert[2].value`` (0-based, as YAML paths count)."""
    if value is None:
        return ()
    from evaltune.metrics.assertions import AssertionSpecError, assertion_from_dict

    if not isinstance(value, list):
        raise SuiteError(source, f"must be a list of assertions (each starting with '- '), not {describe(value)}",
                         item=item, field=field)
    assertions = []
    for n, entry in enumerate(value):
        try:
            assertions.append(assertion_from_dict(entry))
        except AssertionSpecError as error:
            where = f"{field}[{n}]" + (f".{error.field}" if error.field else "")
            raise SuiteError(source, error.message, item=item, field=where) from None
    return tuple(assertions)


def _references(fields: _Fields) -> tuple[str, ...]:
    value = fields.data.get("references")
    # A lone number (references: 3) is refused rather than read as ["3"]: YAML has already rewritten what was
    # typed (010 reads as 8, 1.50 as 1.5), and it reads as a count of answers as easily as an answer.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise fields.fail("references", f'expected a list of strings, got {value!r}; write references: ["..."]')
    return fields.texts("references")


def _input(fields: _Fields, *, multiple_choice: bool) -> str | tuple[Message, ...]:
    value = fields.data.get("input")
    if isinstance(value, list):
        return _messages(fields, value)
    if multiple_choice and value == "":
        return ""  # choices scored with no prompt at all, as CrowS-Pairs does
    return fields.required_text("input")


def _messages(fields: _Fields, value: list[Any]) -> tuple[Message, ...]:
    if not value:
        raise fields.fail("input", "the message list is empty; add at least one {role: user, content: ...}")
    messages = []
    for n, entry in enumerate(value):
        if not isinstance(entry, Mapping) or set(entry) != {"role", "content"}:
            raise fields.fail("input", f"message {n} must be a mapping with exactly 'role' and 'content'")
        role, content = entry["role"], entry["content"]
        if role not in ROLES:
            raise fields.fail("input", f"message {n} has role '{role}'; use one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise fields.fail("input", f"message {n} needs non-empty text 'content', not {describe(content)}")
        messages.append(Message(role=role, content=fields.fit("input", content)))
    if messages[-1].role == "assistant":
        raise fields.fail("input", "the last message is the assistant's; end with a user message")
    return tuple(messages)


def _gold(fields: _Fields, choices: tuple[str, ...]) -> tuple[int, ...]:
    if "gold" not in fields.data or fields.data["gold"] is None:
        if choices:
            raise fields.fail(
                "gold", "choices need 'gold' (the indices of the correct choices; [] when none is correct)"
            )
        return ()
    gold = fields.indices("gold")
    if gold and not choices:
        raise fields.fail("gold", "'gold' needs 'choices'; add the list of choices or remove 'gold'")
    for index in gold:
        if not 0 <= index < len(choices):
            raise fields.fail(
                "gold",
                f"index {index} is out of range: there are {len(choices)} choices (0 to {len(choices) - 1})",
            )
    if len(set(gold)) != len(gold):
        raise fields.fail("gold", "lists an index twice; list each correct choice once")
    return gold


def _check_consistency(item: Item, fields: _Fields) -> None:
    if item.choices and len(item.choices) < 2:
        raise fields.fail("choices", "a multiple-choice item needs at least two choices")
    if item.choices and item.assertions:
        raise fields.fail(
            "assert", "a multiple-choice item generates no text to check; remove 'assert' or the choices"
        )
    if item.expect_abstention and item.references:
        raise fields.fail(
            "references", "an item with expect_abstention: true has no references; remove one or the other"
        )
    if item.group is not None and item.value is None:
        raise fields.fail("value", f"item is in group '{item.group}' but has no 'value' (e.g. female)")


def check_items(items: Iterable[Item], source: str) -> tuple[Item, ...]:
    """Suite-wide checks: not empty, unique ids, well-formed counterfactual groups."""
    items = tuple(items)
    if not items:
        raise SuiteError(source, "the suite has no items; add at least one", field="items")
    first_seen: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        if item.id in first_seen:
            raise SuiteError(
                source,
                f"id '{item.id}' is already used by item #{first_seen[item.id]}; ids must be unique",
                item=f"#{position}",
                field="id",
            )
        first_seen[item.id] = position
    _check_groups(items, source)
    return items


def _check_groups(items: tuple[Item, ...], source: str) -> None:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.group is not None:
            groups[item.group].append(item)
    for name, members in groups.items():
        if len(members) < 2:
            raise SuiteError(
                source,
                f"counterfactual group '{name}' has one variant; add another or remove 'group'",
                item=members[0].id,
                field="group",
            )
        values = Counter((m.attribute, m.value) for m in members)
        for member in members:
            if values[(member.attribute, member.value)] > 1:
                raise SuiteError(
                    source,
                    f"two variants of group '{name}' have value '{member.value}'; each needs its own",
                    item=member.id,
                    field="value",
                )
