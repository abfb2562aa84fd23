"""``evaltune suites list`` and ``evaltune suites validate FILE``."""

from __future__ import annotations

from collections import Counter

import click

from evaltune.errors import user_errors


@click.group()
def suites() -> None:
    """Built-in and user suites."""


@suites.command("list")
def list_suites() -> None:
    """The built-in suites, with their item counts and scorers."""
    from evaltune.harness.builtin import builtin_suites
    from evaltune.harness.loaders import load_suite

    for name, path in sorted(builtin_suites().items()):
        with user_errors():
            suite = load_suite(str(path))
        click.echo(f"{name:<14} {len(suite.items):>4} items  scorers: {', '.join(suite.scorers)}")
        if suite.description:
            click.echo(f"{'':<14} {suite.description.strip().splitlines()[0]}")


@suites.command("validate")
@click.argument("file")
def validate(file: str) -> None:
    """Check a suite file (or built-in name): items, fields, scorer names. Exit 2 with the first error."""
    from evaltune.harness.loaders import load_suite
    from evaltune.metrics.registry import get_scorer

    with user_errors():
        suite = load_suite(file)
        for name in suite.scorers:
            get_scorer(name)
    kinds = Counter(tag for item in suite.items for tag in item.tags[:1])
    mc = sum(item.is_multiple_choice for item in suite.items)
    click.echo(f"ok: {suite.name}, {len(suite.items)} items ({mc} multiple choice), version {suite.content_hash[:12]}")
    if kinds:
        click.echo("by first tag: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
