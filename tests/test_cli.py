"""The command line in-process: help everywhere, one-line errors with exit 2, the list and show commands."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from evaltune.cli import cli
from tests.conftest import invoke_main


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
    return found



@pytest.mark.parametrize("path", all_commands(cli), ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help) > 10, f"'{' '.join(path)}' has no help text"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "no-such-suite", "--model", "default"], "no-such-suite"),
        (["run", "smoke", "--model", "/no/such/folder"], "/no/such/folder"),
        (["run", "smoke", "--model", "openai:http://127.0.0.1:1/v1"], "--model-name"),
        (["run", "smoke", "--scorers", "exact_match,nope"], "unknown scorer 'nope'"),
        (["runs", "show", "999"], "no run 999"),
        (["run", "smoke", "--model", "model:42"], "no model version 42"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    args: list[str], expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 2
    assert expected in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_an_unreachable_endpoint_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"openai:http://127.0.0.1:{free_port()}/v1"
    code, _out, err = invoke_main(["run", "smoke", "--model", url, "--model-name", "m"], monkeypatch, capsys)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and "cannot reach" in error_lines[0] and err.endswith(error_lines[0] + "\n")


def test_a_broken_suite_file_names_the_file_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nitems:\n  - id: a\n    input: {text: hi}\n")
    code, _out, err = invoke_main(["suites", "validate", str(broken)], monkeypatch, capsys)
    assert code == 2
    assert str(broken) in err and "item a" in err and "input" in err


def test_suites_list_and_validate_the_builtin_suites() -> None:
    listed = CliRunner().invoke(cli, ["suites", "list"])
    assert listed.exit_code == 0 and "regression" in listed.output and "smoke" in listed.output
    checked = CliRunner().invoke(cli, ["suites", "validate", "regression"])
    assert checked.exit_code == 0 and checked.output.startswith("ok: regression")


def test_db_upgrade_then_empty_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0 and "at revision" in first.output
    assert "already up to date" in runner.invoke(cli, ["db", "upgrade"]).output
    assert "no runs yet" in runner.invoke(cli, ["runs", "list"]).output
    assert "no model versions yet" in runner.invoke(cli, ["models", "list"]).output


def test_run_then_list_and_show(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "smoke", "--model", str(tiny_model_dir), "--limit", "4"])
    assert ran.exit_code == 0, ran.output
    assert "metric" in ran.output and "95% CI" in ran.output
    listed = runner.invoke(cli, ["runs", "list"])
    assert "completed" in listed.output and "smoke" in listed.output
    shown = runner.invoke(cli, ["runs", "show", "1", "--json"])
    data = json.loads(shown.output)
    assert data["schema_version"] == 2 and data["status"] == "completed" and data["metrics"]
    assert {"name", "value", "ci_low", "ci_high", "n"} <= set(data["metrics"][0])
    models = runner.invoke(cli, ["models", "list"])
    assert tiny_model_dir.name in models.output
    again = runner.invoke(cli, ["run", "smoke", "--model", "model:1", "--limit", "4"])
    assert again.exit_code == 0, again.output
    assert "from cache" in again.output
    summary = runner.invoke(cli, ["run", "smoke", "--model", "model:1", "--limit", "4", "--json"])
    assert summary.exit_code == 0, summary.output
    printed = json.loads(summary.stdout)
    assert printed["schema_version"] == 2 and printed["suite"] == "smoke" and printed["metrics"]


def test_run_takes_settings_warns_about_an_ignored_seed_and_shows_a_repeated_run_as_the_stored_one(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(tiny_model_dir)
    code, out, err = invoke_main(["run", "smoke", "--model", model, "--limit", "3", "--seed", "3"], monkeypatch, capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning")]
    assert warnings == ["warning: --seed 3 has no effect: smoke decodes greedily (temperature 0), so every seed "
                        "gives the same outputs; add --temperature above 0 to sample"]
    assert out.startswith("run 1: suite smoke on ")

    code, out, err = invoke_main(["run", "smoke", "--model", model, "--limit", "3"], monkeypatch, capsys)
    assert code == 0 and "warning" not in err
    assert out.startswith("run 1: suite smoke on ") and "(the same run, already in the store" in out.splitlines()[0]
    assert "3 from cache" in out

    sampled = ["run", "smoke", "--model", model, "--limit", "3", "--seed", "3", "--temperature", "0.7", "--top-p",
               "0.9", "--max-new-tokens", "5", "--samples", "2", "--json"]
    code, out, err = invoke_main(sampled, monkeypatch, capsys)
    assert code == 0 and "warning" not in err
    printed = json.loads(out)
    assert printed["run_id"] == 2 and printed["reused"] is False and printed["stats"]["outputs"] == 6

    code, out, _err = invoke_main(["runs", "list"], monkeypatch, capsys)
    header, *rows = out.splitlines()
    assert header.split() == ["id", "status", "suite", "version", "model", "model", "id", "seed", "settings",
                              "outputs", "created"]
    assert len(rows) == 2  # the repeated run added no row
    assert rows[0].split()[:2] == ["2", "completed"] and "model:1" in rows[0]
    assert "  3  T=0.7 top-p=0.9, max 5 tok, 2 samples, first 3 items  " in rows[0]
    assert "  3  greedy, max 32 tok, first 3 items  " in rows[1]


def _other_adapter(adapter: Path, folder: Path) -> Path:
    """A copy of ``adapter`` with its weights doubled: another adapter of the same base."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, folder)
    weights = folder / "adapter_model.safetensors"
    save_file({name: tensor * 2 for name, tensor in load_file(weights).items()}, weights)
    return folder


def test_runs_list_shows_whole_model_names_so_two_adapters_differ(
    tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    first = shutil.copytree(tiny_adapter_dir, tmp_path / "lora-from-the-march-ratings-campaign-first")
    second = _other_adapter(tiny_adapter_dir, tmp_path / "lora-from-the-march-ratings-campaign-second")
    for adapter in (first, second):
        code, _out, err = invoke_main(["run", "smoke", "--model", str(tiny_model_dir), "--adapter", str(adapter),
                                       "--limit", "1"], monkeypatch, capsys)
        assert code == 0, err
    code, out, _err = invoke_main(["runs", "list"], monkeypatch, capsys)
    assert code == 0
    rows = out.splitlines()[1:]
    assert f"{tiny_model_dir.name} + {second.name}  model:2" in rows[0]
    assert f"{tiny_model_dir.name} + {first.name}   model:1" in rows[1]


def test_suites_show_prints_a_builtin_file_and_copy_makes_a_copy_of_the_same_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaltune.harness.builtin import builtin_path

    code, out, err = invoke_main(["suites", "show", "smoke"], monkeypatch, capsys)
    assert code == 0 and out == builtin_path("smoke").read_text(encoding="utf-8")
    assert err.startswith(f"smoke: {builtin_path('smoke')}; ") and err.count("\n") == 1
    code, _out, err = invoke_main(["suites", "show", "regression"], monkeypatch, capsys)
    assert code == 0 and f"it reads {builtin_path('regression').parent / 'regression.jsonl'}" in err

    code, out, _err = invoke_main(["suites", "copy", "regression", str(tmp_path)], monkeypatch, capsys)
    assert code == 0, _err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regression.jsonl", "regression.yaml"]
    assert f"run it with 'evaltune run {tmp_path / 'regression.yaml'}'" in out
    _code, builtin, _err = invoke_main(["suites", "validate", "regression"], monkeypatch, capsys)
    _code, copied, _err = invoke_main(["suites", "validate", str(tmp_path / "regression.yaml")], monkeypatch, capsys)
    assert copied.splitlines()[0] == builtin.splitlines()[0]  # same items: the same suite version

    mine = tmp_path / "mine" / "release.yaml"
    code, _out, err = invoke_main(["suites", "copy", "smoke", str(mine)], monkeypatch, capsys)
    assert code == 0, err
    assert mine.read_text(encoding="utf-8") == builtin_path("smoke").read_text(encoding="utf-8")
    code, _out, err = invoke_main(["suites", "copy", "smoke", str(mine)], monkeypatch, capsys)
    assert code == 2 and f"{mine} already exists" in err and err.count("\n") == 1
