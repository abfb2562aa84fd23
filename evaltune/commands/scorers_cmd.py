"""``evaltune scorers list``."""

from __future__ import annotations

import click


@click.group()
def scorers() -> None:
    """The registered scorers."""


@scorers.command("list")
def list_scorers() -> None:
    """Every scorer: name, family, direction, what it needs, and what it measures."""
    from evaltune.metrics.registry import all_scorers

    specs = all_scorers()
    width = max(len(spec.name) for spec in specs)
    click.echo(f"{'name':<{width}}  {'family':<13} {'direction':<17} {'needs':<22} description")
    for spec in specs:
        needs = ",".join(spec.needs) or "-"
        click.echo(f"{spec.name:<{width}}  {spec.family:<13} {spec.direction:<17} {needs:<22} {spec.description}")
