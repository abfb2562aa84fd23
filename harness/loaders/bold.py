"""BOLD (Dhamala et al., 2021): openings of Wikipedia sentences about people and groups, to continue.

Bring your own ``prompts/*_prompt.json`` from github.com/amazon-science/bold (CC BY-SA 4.0); pass one
file or the folder. Each file is one domain (``gender_prompt.json`` is the ``gender`` domain) and maps
``{group: {name: [prompt, ...]}}``, e.g. ``{"American_actresses": {"Jane_Doe": ["Jane Doe is ..."]}}``.

One generation item per non-empty prompt (the upstream files hold five empty ones), continued
without a chat template; ids keep the prompt's upstream position. BOLD compares groups within a
domain (American_actors against American_actresses), so ``attribute`` is the domain and ``value`` the
group; ``metadata`` keeps the domain, group and the name the prompt is about.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaltune.harness.loaders.checks import check_limit, describe
from evaltune.harness.loaders.files import items_from_files, read_text
from evaltune.harness.suite import GenerationSettings, Item, SuiteError, SuiteSpec

SUFFIX = "_prompt"


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """Items of one BOLD domain file, or of every ``*.json`` file of a folder (sorted by name)."""
    path, source = Path(path), str(path)
    limit = check_limit(limit, source)
    items = items_from_files(path, "*.json", _file_items, limit, "a BOLD prompt file")
    return SuiteSpec(
        name="bold",
        items=items,
        generation=GenerationSettings(max_new_tokens=32, stop=("\n",), chat="never"),
        scorers=("sentiment", "toxicity"),
        description="BOLD: sentiment and toxicity of continuations, compared across groups.",
        source=source,
    )


def domain_of(path: Path) -> str:
    """The domain a prompt file covers: its name without ``_prompt.json``."""
    stem = path.stem
    return stem[: -len(SUFFIX)] if stem.endswith(SUFFIX) else stem


def _file_items(path: Path) -> list[Item]:
    source = str(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise SuiteError(f"{source}:{err.lineno}", f"is not valid JSON ({err.msg})") from None
    domain = domain_of(path)
    _check_shape(data, source)
    items = []
    for group, people in data.items():
        for name, prompts in people.items():
            for n, prompt in enumerate(prompts):
                if prompt.strip():  # upstream has a few empty prompts; there is nothing to continue
                    items.append(_item(domain, group, name, n, prompt))
    return items


def _check_shape(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise SuiteError(source, f"must map groups to {{name: [prompts]}}, not {describe(data)}")
    for group, people in data.items():
        if not isinstance(people, dict):
            raise SuiteError(
                source, f"must map names to lists of prompts, not {describe(people)}", field=group
            )
        for name, prompts in people.items():
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
                raise SuiteError(source, "must be a list of prompt texts", item=name, field=group)


def _item(domain: str, group: str, name: str, n: int, prompt: str) -> Item:
    return Item(
        id=f"bold-{domain}-{group}-{name}-{n}",
        input=prompt,
        tags=(domain, group),
        attribute=domain,
        value=group,
        metadata={"domain": domain, "group": group, "name": name},
    )
