"""Prompt variants: named ways of asking a suite's items, compared by a sweep (``evaltune run`` with ``prompts:``).

A suite file names them under ``prompts:``::

    prompts:
      concise:  {system: "Answer in one sentence.", template: "{{ input }}"}
      grounded: {system: "Use only the context.", template: "Context:\\n{{ context }}\\n\\nQuestion: {{ input }}"}

``template`` is Jinja2 over the item's fields (``input``, ``context``, ``id``, ``references``, ``tags``,
``metadata``), rendered in Jinja2's immutable sandbox with strict undefined: a template reads the item and nothing
else (``{{ ''.__class__ }}`` is refused), and a field an item lacks is an error, not an empty string (write
``{% if context is defined %}...{% endif %}`` for a field only some items have). It renders text inputs; chat
inputs stay as they are. ``system`` is the system prompt (left out: the suite's own ``generation.system_prompt``).

Every variant is rendered for every item when the suite loads, so a syntax error, an unknown field or a refused
attribute fails the load with the file, the variant, the item and the field named. ``with_variant`` gives the suite
one variant makes: each text input rendered (the raw input kept in ``metadata["raw_input"]``, as ``template:``
does) and the system prompt set, so its content hash, and so its runs, are the variant's own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from evaltune.harness.loaders.checks import describe
from evaltune.harness.loaders.files import where
from evaltune.harness.suite import Item, PromptVariant, SuiteError, SuiteSpec
from evaltune.suggestions import did_you_mean

DEFAULT_VARIANT = "default"  # the one variant of a suite without ``prompts:``
FIELDS = ("input", "context", "id", "references", "tags", "metadata")
VARIANT_KEYS = ("system", "template")
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_REPEAT = 100_000  # the longest text or number a template may build with * or **


class PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with ``*`` and ``**`` bounded: ``{{ 'a' * 10**12 }}`` in a suite file someone
    sent must not take the machine's memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError(f"an exponent above 64 ({right}) is refused")
        if operator == "*" and any(isinstance(a, (str, list, tuple)) for a in (left, right)):
            count = right if isinstance(left, (str, list, tuple)) else left
            size = len(left if isinstance(left, (str, list, tuple)) else right)
            if isinstance(count, int) and count * size > _MAX_REPEAT:
                raise SecurityError(f"repeating text to more than {_MAX_REPEAT} characters is refused")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENT = PromptSandbox(undefined=StrictUndefined, autoescape=False)


def variants_from_yaml(value: Any, source: str, items: tuple[Item, ...]) -> tuple[PromptVariant, ...]:
    """The variants of a suite file's ``prompts:`` mapping, each checked by rendering it for every item.
    Raises ``SuiteError`` naming the file (and line), the variant, the item and the field."""
    at = where(source, value)
    if not isinstance(value, Mapping):
        raise SuiteError(at, f"must be a mapping of variant names to {{system: ..., template: ...}}, not "
                             f"{describe(value)}", field="prompts")
    if not value:
        raise SuiteError(at, "names no variant; add one such as concise: {template: \"{{ input }}\"}, or remove "
                             "prompts:", field="prompts")
    variants = []
    for name, spec in value.items():
        variant = _variant(name, spec, source, at)
        check_variant(variant, items, where(source, spec))
        variants.append(variant)
    return tuple(variants)


def check_variant(variant: PromptVariant, items: tuple[Item, ...], source: str) -> None:
    """Raise ``SuiteError`` unless ``variant``'s template compiles, uses known fields and renders for every item."""
    if variant.template is None:
        return
    field = f"prompts.{variant.name}.template"
    _compiled(variant.template, source, field)
    for item in items:
        _render(variant.template, item, source, field)


def variant_names(suite: SuiteSpec) -> tuple[str, ...]:
    """The names of the suite's variants, in file order: ``("default",)`` for a suite without ``prompts:``."""
    return tuple(v.name for v in suite.variants) or (DEFAULT_VARIANT,)


def with_variant(suite: SuiteSpec, name: str) -> SuiteSpec:
    """The suite asked the way variant ``name`` asks: each text input rendered by its template (the raw input in
    ``metadata["raw_input"]``) and its system prompt set. The name stays the suite's; the result has no variants.
    ``default`` on a suite without variants is the suite itself. Raises ``SuiteError`` for an unknown name."""
    if not suite.variants and name == DEFAULT_VARIANT:
        return suite
    variant = next((v for v in suite.variants if v.name == name), None)
    if variant is None:
        known = variant_names(suite)
        raise SuiteError(suite.source or suite.name, f"no prompt variant '{name}'{did_you_mean(name, known)}; the "
                                                     f"suite has: {', '.join(known)}", field="prompts")
    items = suite.items
    if variant.template is not None:
        field = f"prompts.{variant.name}.template"
        items = tuple(_with_input(item, _render(variant.template, item, suite.source, field))
                      if isinstance(item.input, str) else item for item in items)
    generation = suite.generation
    if variant.system is not None:
        generation = dataclasses.replace(generation, system_prompt=variant.system)
    return dataclasses.replace(suite, items=items, generation=generation, variants=())


def _variant(name: Any, spec: Any, source: str, at: str) -> PromptVariant:
    """The variant ``name: spec``; ``at`` is where ``prompts:`` is, for a name that is wrong."""
    if not isinstance(name, str) or not VARIANT_NAME.match(name):
        raise SuiteError(at, f"variant name {name!r} must be 1-100 letters, digits, '_', '.' or '-' (starting "
                                 "with a letter or digit): it names the variant in reports as variant@model",
                         field="prompts")
    at = where(source, spec)
    if not isinstance(spec, Mapping):
        raise SuiteError(at, f"must be a mapping such as {{system: \"...\", template: \"{{{{ input }}}}\"}}, not "
                             f"{describe(spec)}", field=f"prompts.{name}")
    for key in spec:
        if key not in VARIANT_KEYS:
            hint = did_you_mean(key, VARIANT_KEYS) if isinstance(key, str) else ""
            raise SuiteError(at, f"unknown key '{key}'{hint}; a variant holds only: {', '.join(VARIANT_KEYS)}",
                             field=f"prompts.{name}.{key}")
    if not any(spec.get(key) is not None for key in VARIANT_KEYS):
        raise SuiteError(at, "gives neither system nor template; give at least one (template: \"{{ input }}\" asks "
                             "the items as they are)", field=f"prompts.{name}")
    return PromptVariant(name, _text(spec, "system", at, name), _text(spec, "template", at, name))


def _text(spec: Mapping[str, Any], key: str, source: str, name: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(source, f"must be non-empty text, not {describe(value)}", field=f"prompts.{name}.{key}")
    return value


def _compiled(template: str, source: str, field: str) -> Template:
    """The compiled template; raises ``SuiteError`` for a syntax error or a name that is not an item field."""
    try:
        names = meta.find_undeclared_variables(_ENVIRONMENT.parse(template))
    except TemplateSyntaxError as error:
        raise SuiteError(source, f"line {error.lineno} of the template: {error.message}", field=field) from None
    for unknown in sorted(names - set(FIELDS)):
        raise SuiteError(source, f"unknown variable '{unknown}'{did_you_mean(unknown, FIELDS)}; a template reads "
                                 f"the item's fields: {', '.join(FIELDS)}", field=field)
    if "input" not in names:
        raise SuiteError(source, "the template never uses {{ input }}; add it, or every item would ask the same",
                         field=field)
    return _compile(template)


@lru_cache(maxsize=64)
def _compile(template: str) -> Template:
    return _ENVIRONMENT.from_string(template)


def _render(template: str, item: Item, source: str, field: str) -> str:
    """``template`` rendered for the item; raises ``SuiteError`` naming the item on a missing field or a refusal."""
    if not isinstance(item.input, str):
        return ""  # chat inputs are not templated
    try:
        text = _compile(template).render(_fields(item))
    except SecurityError as error:
        raise SuiteError(source, f"refused: {str(error).rstrip('.')}; a template may only read the item's fields",
                         item=item.id, field=field) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
        message = getattr(error, "message", None) or str(error)
        raise SuiteError(source, f"{message}{_missing_hint(message, item)}", item=item.id, field=field) from None
    if not text.strip():
        raise SuiteError(source, "renders to an empty prompt for this item", item=item.id, field=field)
    return text


def _fields(item: Item) -> dict[str, Any]:
    fields: dict[str, Any] = {"input": item.input, "id": item.id, "references": list(item.references),
                              "tags": list(item.tags), "metadata": dict(item.metadata)}
    if item.context is not None:  # absent, not None: "{{ context }}" must not print "None"
        fields["context"] = item.context
    return fields


def _missing_hint(message: str, item: Item) -> str:
    if "'context' is undefined" in message and item.context is None:
        return ("; this item has no context: give it one, or write {% if context is defined %}...{% endif %} "
                "around the part that uses it")
    if "has no attribute" in message:
        return "; this item lacks that key: add it to the item, or test for it with 'is defined'"
    return ""


def _with_input(item: Item, prompt: str) -> Item:
    return dataclasses.replace(item, input=prompt, metadata={**item.metadata, "raw_input": item.input})
