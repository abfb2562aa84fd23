"""``evaltune scorers list``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from evaltune.metrics.registry import ScorerSpec


@click.group()
def scorers() -> None:
    """The registered scorers."""


@scorers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the scorers as JSON (with each parameter's type).")
def list_scorers(as_json: bool) -> None:
    """Every scorer: name, family, direction, what it needs, where it came from, and what it measures; under it,
    its parameters (type, default, allowed values) and presets (names for a parameterisation, such as rouge_1).

    A suite names a scorer with parameters as {name: similar, threshold: 0.75}; --scorers takes the id
    'similar(threshold=0.75)'. A plugin that failed to load is one line on stderr; the rest are listed.
    """
    from evaltune.metrics.registry import all_scorers, plugin_problems

    specs = all_scorers()
    for problem in plugin_problems():
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(json.dumps({"scorers": [_as_dict(spec) for spec in specs], "plugin_problems": plugin_problems()},
                              indent=2))
        return
    width = max(len(spec.base) for spec in specs)
    origin_width = max(len(spec.origin) for spec in specs)
    click.echo(f"{'name':<{width}}  {'family':<13} {'direction':<17} {'needs':<22} {'origin':<{origin_width}}  "
               "description")
    for spec in specs:
        needs = ",".join(spec.needs) or "-"
        click.echo(f"{spec.base:<{width}}  {spec.family:<13} {spec.direction:<17} {needs:<22} "
                   f"{spec.origin:<{origin_width}}  {spec.description}")
        for param in spec.params:
            helped = f": {param.help}" if param.help else ""
            click.echo(f"{'':<{width}}    parameter {param.describe()}{helped}")
        if spec.presets:
            click.echo(f"{'':<{width}}    presets: " + ", ".join(
                f"{name} ({_shown(values)})" for name, values in spec.presets.items()))


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items())


def _as_dict(spec: ScorerSpec) -> dict[str, Any]:
    return {
        "name": spec.base, "id": spec.name, "family": spec.family, "higher_is_better": spec.higher_is_better,
        "needs": list(spec.needs), "origin": spec.origin, "description": spec.description,
        "params": [param.to_dict() for param in spec.params], "presets": spec.presets,
    }
