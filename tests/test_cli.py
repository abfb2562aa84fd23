"""The command line in-process: help everywhere, one-line errors with exit 2, the list and show commands."""

from __future__ import annotations

import json
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
