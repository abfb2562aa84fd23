"""How two runs were made differently: model, suite version, generation settings, seed, item limit and evaltune
version. A report lists these beside its deltas, so that a change is read against what was changed.

Runs of one suite version pair item by item whatever their settings; this module only says what differed.
"""

from __future__ import annotations

from typing import Any

from evaltune.reports.records import Difference, RunInfo

# The generation settings that can change an output, as a report names them (batch size changes none).
SETTING_NAMES = {
    "temperature": "temperature",
    "top_p": "top-p",
    "max_new_tokens": "max new tokens",
    "samples": "samples per item",
    "stop": "stop sequences",
    "chat": "chat template",
    "system_prompt": "system prompt",
}


def differences(base: RunInfo, cand: RunInfo) -> list[Difference]:
    """Each way ``cand`` was made differently from ``base``, model first; empty when only the outputs differ."""
    found = []
    if base.model_version_id != cand.model_version_id:
        found.append(Difference("model", _model(base), _model(cand)))
    if (base.suite, base.suite_version) != (cand.suite, cand.suite_version):
        found.append(Difference("suite version", f"{base.suite} {base.suite_version}",
                                f"{cand.suite} {cand.suite_version}", "compared on the item keys both hold"))
    found += _settings(base.generation, cand.generation)
    if base.seed != cand.seed:
        greedy = _greedy(base) and _greedy(cand)
        found.append(Difference("seed", str(base.seed), str(cand.seed),
                                "no effect: both runs decode greedily" if greedy else ""))
    if base.item_limit != cand.item_limit:
        found.append(Difference("items", _items(base.item_limit), _items(cand.item_limit),
                                "compared on the items both ran"))
    if base.code_version and cand.code_version and base.code_version != cand.code_version:
        found.append(Difference("evaltune version", base.code_version, cand.code_version))
    return found


def _model(info: RunInfo) -> str:
    return f"{info.model} (model:{info.model_version_id})"


def _settings(base: dict[str, Any], cand: dict[str, Any]) -> list[Difference]:
    """Settings both runs recorded with different values (a run stored without its settings says nothing)."""
    return [Difference(name, _value(base[key]), _value(cand[key]))
            for key, name in SETTING_NAMES.items() if key in base and key in cand and base[key] != cand[key]]


def _greedy(info: RunInfo) -> bool:
    return info.generation.get("temperature") == 0


def _items(limit: int | None) -> str:
    return "all" if limit is None else f"first {limit}"


def _value(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(repr(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
