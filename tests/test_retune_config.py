"""One config class per training method: its fields reach every surface with one default and one help text, it
checks itself, and stored job configs of every schema version load (unknown keys are dropped with a note)."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass, fields

import pytest
from click.testing import CliRunner

from evaltune.cli import cli
from evaltune.commands.retune_cmd import _config, retune
from evaltune.errors import UserError
from evaltune.retune.accelerate_entry import build_parser
from evaltune.retune.config import (
    CONFIGS,
    SCHEMA_VERSION,
    DpoConfig,
    KtoConfig,
    RetuneConfig,
    SftConfig,
    config_from_options,
    load_config,
    make_config,
    option_fields,
    setting,
)

# A KTO job's config as evaltune stored it before schema versions: LoRA nested, beta and sft_weight for every method.
VERSION_1_KTO = """{"method": "kto", "lora": {"r": 4, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj",
 "v_proj"]}, "learning_rate": 0.001, "epochs": 1.0, "batch_size": 8, "gradient_accumulation_steps": 1,
 "max_length": 512, "seed": 3, "beta": 0.2, "sft_weight": 1.0, "logging_steps": 1, "save_steps": 0, "merge": false,
 "report_to": ["tensorboard"]}"""


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_retune_help_lists_every_field_of_every_method_with_its_help() -> None:
    result = CliRunner().invoke(cli, ["retune", "--help"])
    assert result.exit_code == 0, result.output
    shown = _words(result.output)
    options = option_fields()
    assert {o.name for o in options} == {f.name for cls in CONFIGS.values() for f in fields(cls)}
    for option in options:
        assert option.flag in shown and _words(option.help) in shown, option.name
    assert "(dpo only)" in shown and "(dpo, kto only)" in shown  # beta and sft_weight say whom they are for


def test_the_command_line_and_the_accelerate_entry_give_each_method_its_dataclass_defaults() -> None:
    clicked = retune.make_context("retune", ["--dataset", "1"]).params
    parsed = vars(build_parser().parse_args(["--base", "b", "--data", "d.jsonl", "--output", "out"]))
    for method, cls in CONFIGS.items():
        assert config_from_options(method, clicked) == cls(), method
        assert config_from_options(method, parsed) == cls(), method
    for option in option_fields():  # an argparse list and a click tuple are the same default
        if option.launcher:  # how the worker launches the job: not an option of the entry that runs inside it
            assert option.name not in parsed and clicked[option.name] == option.default, option.name
            continue
        same = [tuple(v) if isinstance(v, list | tuple) else v for v in (clicked[option.name], parsed[option.name])]
        assert same == [option.default, option.default], option.name


def test_an_option_of_another_method_is_refused_by_name() -> None:
    ctx = retune.make_context("retune", ["--dataset", "1", "--beta", "0.3"])
    with pytest.raises(UserError, match="--beta is a dpo/kto setting, not one for sft"):
        _config(ctx, "sft", ctx.params)
    assert _config(ctx, "kto", ctx.params) == KtoConfig(beta=0.3)


def test_a_config_checks_itself_and_is_only_its_methods_fields() -> None:
    with pytest.raises(ValueError, match="unknown method 'ppo'; choose one of dpo, kto, sft"):
        make_config("ppo")
    with pytest.raises(ValueError, match="lora_r must be at least 1"):
        SftConfig(lora_r=0)
    with pytest.raises(ValueError, match="learning_rate and epochs must be positive"):
        DpoConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="lora_target_modules is empty"):
        KtoConfig(lora_target_modules=" , ")
    with pytest.raises(TypeError):
        SftConfig(beta=0.1)  # type: ignore[call-arg]  # beta is DPO's and KTO's
    with pytest.raises(TypeError, match="abstract"):
        RetuneConfig()  # type: ignore[abstract]
    with pytest.raises(FrozenInstanceError):
        DpoConfig().epochs = 1  # type: ignore[misc]
    assert KtoConfig(lora_target_modules="q_proj, v_proj").target_modules() == ["q_proj", "v_proj"]
    assert DpoConfig().target_modules() == "all-linear"


def test_two_methods_cannot_declare_one_option_with_two_defaults() -> None:
    @dataclass(frozen=True)
    class Louder(SftConfig):
        method = "louder"
        beta: float = setting(0.5, "A louder beta.")  # DPO's and KTO's beta defaults to 0.1

    with pytest.raises(TypeError, match="declare it once"):
        option_fields([DpoConfig, Louder])


def test_a_stored_config_round_trips_through_json_for_every_method() -> None:
    for cls in CONFIGS.values():
        config = cls(epochs=2.5, lora_r=4, report_to=("tensorboard",), merge=True)
        stored = json.loads(json.dumps(config.as_json()))
        assert stored["schema_version"] == SCHEMA_VERSION and stored["method"] == cls.method
        assert load_config(stored) == (config, [])


def test_a_config_stored_before_schema_versions_still_loads() -> None:
    config, notes = load_config(json.loads(VERSION_1_KTO))
    assert config == KtoConfig(lora_r=4, lora_alpha=16, lora_dropout=0.05, lora_target_modules="q_proj,v_proj",
                               learning_rate=0.001, epochs=1.0, seed=3, beta=0.2, report_to=("tensorboard",))
    assert notes == []  # sft_weight was stored for every method then: not news


def test_unknown_stored_keys_are_dropped_with_a_note_and_bad_known_ones_refused() -> None:
    newer = {**DpoConfig(beta=0.3).as_json(), "schema_version": SCHEMA_VERSION + 1, "packing": True}
    config, notes = load_config(newer)
    assert config == DpoConfig(beta=0.3)
    assert notes == [f"the stored setting packing=True was ignored: dpo configs of schema version {SCHEMA_VERSION} "
                     "have no such field (written by a newer evaltune?)"]
    renamed = {**json.loads(VERSION_1_KTO), "warmup": 10}
    assert "warmup=10 was ignored" in load_config(renamed)[1][0]
    with pytest.raises(ValueError, match="stored retune config: epochs must be a number, got 'three'"):
        load_config({**DpoConfig().as_json(), "epochs": "three"})
    with pytest.raises(ValueError, match="schema_version must be a whole number"):
        load_config({"schema_version": "2"})
    assert load_config({}, method="sft") == (SftConfig(), [])  # the job's method when the config names none
