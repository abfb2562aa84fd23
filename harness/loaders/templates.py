"""Prompt templates of a suite file: ``str.format`` strings over an item's input, context and id."""

from __future__ import annotations

import dataclasses
import string

from evaltune.harness.suite import Item, SuiteError

PLACEHOLDERS = ("input", "context", "id")


def placeholders(template: str) -> list[str]:
    """The field names ``template`` uses, in order; raises ``ValueError`` when it does not parse."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def check_template(template: str, source: str, field: str) -> None:
    """Raise unless ``template`` parses and uses only the known placeholders, {input} among them."""
    try:
        names = placeholders(template)
    except ValueError as err:
        raise SuiteError(
            source, f"is not a valid template ({err}); write {{{{ and }}}} for literal braces", field=field
        ) from None
    for name in names:
        if name not in PLACEHOLDERS:
            raise SuiteError(
                source,
                f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                field=field,
            )
    if "input" not in names:
        raise SuiteError(source, "the template never uses {input}; add it", field=field)


def apply_templates(
    items: tuple[Item, ...], *, source: str, template: str | None, context_template: str | None
) -> tuple[Item, ...]:
    """Items with string inputs rendered through the matching template; chat inputs stay as they are.

    ``context_template`` renders items that have a context; ``template`` renders the rest (and all
    items when ``context_template`` is None). The original input is kept in ``metadata["raw_input"]``.
    Templates must have passed ``check_template``.
    """
    if template is None and context_template is None:
        return items
    return tuple(_render(item, source, template, context_template) for item in items)


def _render(item: Item, source: str, template: str | None, context_template: str | None) -> Item:
    if not isinstance(item.input, str):
        return item
    chosen: str | None = template
    field = "template"
    if item.context is not None and context_template is not None:
        chosen, field = context_template, "context_template"
    if chosen is None:
        return item
    if item.context is None and "context" in placeholders(chosen):
        raise SuiteError(
            source,
            "the template uses {context} but this item has no context; give it one, "
            "or use context_template for the items that have a context",
            item=item.id,
            field=field,
        )
    prompt = chosen.format(input=item.input, context=item.context or "", id=item.id)
    return dataclasses.replace(item, input=prompt, metadata={**item.metadata, "raw_input": item.input})
