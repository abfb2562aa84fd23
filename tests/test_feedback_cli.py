"""The rating app's commands in-process: users, campaigns, ratings export, and how ui starts Streamlit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from evaltune.cli import cli
from evaltune.commands.ui_cmd import streamlit_command
from evaltune.db import open_store
from evaltune.db.ratings import Campaign, User
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import AuthError, LockedOut, LoginLimits, authenticate, log_in
from evaltune.feedback_ui.export import COLUMNS, SCHEMA_VERSION, read_ratings
from tests.conftest import invoke_main
from tests.fixtures.feedback_seed import PASSWORD, Seeded, rate_campaign, seed_store


@pytest.fixture
def seeded() -> Seeded:
    store = open_store()  # the default SQLite file in this test's EVALTUNE_HOME, as the commands use
    try:
        return seed_store(store, items=4, users={"ann": "annotator"})
    finally:
        store.close()


def test_users_add_reads_the_password_from_stdin_and_hashes_it() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["users", "add", "alice", "--role", "admin", "--password-stdin"],
                           input="s3cret-enough\n")
    assert result.exit_code == 0, result.output
    store = open_store()
    with store.session_scope() as s:
        stored = s.execute(select(User)).scalar_one()
        assert stored.role == "admin" and stored.password_hash.startswith("$argon2id$")
        assert authenticate(s, "alice", "s3cret-enough").name == "alice"
    store.close()
    again = runner.invoke(cli, ["users", "add", "alice", "--role", "viewer", "--password-stdin"], input="another-one\n")
    assert again.exit_code != 0 and "already exists" in str(again.exception or again.output)
    short = runner.invoke(cli, ["users", "add", "bob", "--role", "viewer", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in str(short.exception or short.output)
    listed = runner.invoke(cli, ["users", "list"])
    assert "alice" in listed.output and "admin" in listed.output


def test_users_add_prompts_twice_without_stdin_flag() -> None:
    result = CliRunner().invoke(cli, ["users", "add", "carol", "--role", "annotator"],
                                input="long-password\nlong-password\n")
    assert result.exit_code == 0, result.output
    assert "added annotator 'carol'" in result.output


def test_campaigns_create_with_filters_guidelines_and_pairwise(seeded: Seeded, tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text("# Rate facts\nPenalise made-up capitals.", encoding="utf-8")
    runs = ",".join(map(str, seeded.run_ids))
    runner = CliRunner()
    single = runner.invoke(cli, ["campaigns", "create", "--runs", runs, "--filter", "abstention==0",
                                 "--overlap", "3", "--guidelines", str(guide), "--name", "abstained"])
    assert single.exit_code == 0, single.output
    assert "4 outputs, overlap 3 (12 ratings wanted)" in single.output
    pair = runner.invoke(cli, ["campaigns", "create", "--runs", runs, "--pairwise", "--filter", "tag=geo"])
    assert pair.exit_code == 0, pair.output
    assert "2 A/B pairs" in pair.output
    bad = runner.invoke(cli, ["campaigns", "create", "--runs", "99"])
    assert bad.exit_code != 0 and "no run 99" in str(bad.exception or bad.output)
    store = open_store()
    with store.session_scope() as s:
        stored = s.execute(select(Campaign).order_by(Campaign.id)).scalars().all()
        assert stored[0].guidelines.startswith("# Rate facts") and stored[0].overlap == 3
        assert stored[0].item_filter["scores"] == [{"scorer": "abstention", "op": "==", "value": 0.0}]
        assert stored[1].pairwise
    store.close()
    assert "abstained" in runner.invoke(cli, ["campaigns", "list"]).output


def _rate_everything(seeded: Seeded) -> None:
    store = open_store()
    account = seeded.users["ann"]
    with store.session_scope() as s:
        rate_campaign(s, account, 1, lambda task: SingleAnswer(likert=5, hallucination=False,
                                                               thumbs=None if task.item_key == "q0" else True))
        rate_campaign(s, account, 2, lambda _task: PairAnswer(choice="a"))
    store.close()


def test_ratings_export_jsonl_and_csv(seeded: Seeded, tmp_path: Path) -> None:
    runner = CliRunner()
    runs = ",".join(map(str, seeded.run_ids))
    first_run = str(seeded.run_ids[0])
    assert runner.invoke(cli, ["campaigns", "create", "--runs", first_run, "--overlap", "1"]).exit_code == 0
    assert runner.invoke(cli, ["campaigns", "create", "--runs", runs, "--pairwise", "--overlap", "1"]).exit_code == 0
    _rate_everything(seeded)
    out = tmp_path / "ratings.jsonl"
    result = runner.invoke(cli, ["ratings", "export", "--format", "jsonl", "-o", str(out)])
    assert result.exit_code == 0 and "wrote 8 ratings" in result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    single = [r for r in rows if r["campaign_id"] == 1]
    pairs = [r for r in rows if r["campaign_id"] == 2]
    assert {r["likert"] for r in single} == {5} and all(r["output"] and r["prompt"] for r in single)
    assert [r["thumbs"] for r in single] == [None, True, True, True]  # thumbs are optional in the form
    assert {r["schema_version"] for r in rows} == {SCHEMA_VERSION} and list(rows[0]) == COLUMNS
    for r in pairs:
        assert r["choice"] == "a" and r["preferred_generation_id"] == r["side_a_generation_id"]
        assert r["output_a"] and r["output_b"] and r["output_a"] != r["output_b"]
    csv_path = tmp_path / "pairs.csv"
    result = runner.invoke(cli, ["ratings", "export", "--campaign", "2", "--format", "csv", "-o", str(csv_path)])
    assert result.exit_code == 0 and "wrote 4 ratings" in result.output
    with csv_path.open(encoding="utf-8", newline="") as handle:
        assert [row["choice"] for row in csv.DictReader(handle)] == ["a"] * 4
    single_csv = ["ratings", "export", "--campaign", "1", "--format", "csv", "-o", str(tmp_path / "single.csv")]
    assert runner.invoke(cli, single_csv).exit_code == 0
    for path in (out, tmp_path / "single.csv"):  # each format reads back into the same typed table
        table = read_ratings(path)
        table = table[table["campaign_id"] == 1].reset_index(drop=True)
        assert list(table.columns) == COLUMNS and table["likert"].tolist() == [5] * 4
        assert table["thumbs"].isna().tolist() == [True, False, False, False] and table["thumbs"].iloc[1]


def test_ratings_exports_of_any_version_read_back(tmp_path: Path) -> None:
    first = {"rating_id": 1, "campaign_id": 1, "likert": 4, "hallucination": False, "choice": None}
    old = tmp_path / "v1.jsonl"  # version 1: no schema_version, no thumbs
    old.write_text(json.dumps(first) + "\n", encoding="utf-8")
    table = read_ratings(old)
    assert list(table.columns) == COLUMNS and table.loc[0, "schema_version"] == SCHEMA_VERSION
    assert table["thumbs"].isna().all() and table.loc[0, "likert"] == 4 and not table.loc[0, "hallucination"]
    old_csv = tmp_path / "v1.csv"
    old_csv.write_text("rating_id,likert,hallucination\n1,4,False\n2,,\n", encoding="utf-8")
    assert read_ratings(old_csv)["likert"].tolist()[0] == 4 and read_ratings(old_csv)["thumbs"].isna().all()
    newer = tmp_path / "v9.jsonl"
    newer.write_text(json.dumps({**first, "schema_version": 9}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="schema version 9, newer"):
        read_ratings(newer)


def test_ui_binds_to_localhost_by_default() -> None:
    command = streamlit_command("127.0.0.1", 8501)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("feedback_ui/server.py")
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "default: 127.0.0.1" in CliRunner().invoke(cli, ["ui", "--help"]).output


def test_a_misspelt_filter_is_refused_with_what_the_runs_have(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ",".join(map(str, seeded.run_ids))
    code, _out, err = invoke_main(["campaigns", "create", "--runs", runs, "--filter", "abstension==0"],
                                  monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "unknown scorer 'abstension' (did you mean 'abstention'?)" in err
    assert "the scorers that scored runs 1, 2: abstention, answer_match" in err
    code, _out, err = invoke_main(["campaigns", "create", "--runs", runs, "--filter", "tag=goe"], monkeypatch, capsys)
    assert code == 2 and "unknown tag 'goe' (did you mean 'geo'?)" in err
    code, _out, err = invoke_main(["campaigns", "list"], monkeypatch, capsys)
    assert "no campaigns yet" in _out  # nothing was stored
    assert "grounded_hallucination>0.5" in CliRunner().invoke(cli, ["campaigns", "create", "--help"]).output


def test_campaigns_close_and_open_and_the_app_shows_it(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamlit.testing.v1 import AppTest

    from evaltune.feedback_ui.queue import QueueError, claim_next

    assert invoke_main(["campaigns", "create", "--runs", str(seeded.run_ids[0]), "--overlap", "1", "--name", "facts"],
                       monkeypatch, capsys)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert invoke_main(["users", "add", "boss", "--role", "admin", "--password-stdin"], monkeypatch, capsys)[0] == 0
    _rate_some(seeded, 1)
    code, out, _err = invoke_main(["campaigns", "close", "1"], monkeypatch, capsys)
    assert code == 0 and out.startswith("closed campaign 1 'facts': annotators get no more of its items; "
                                        "1 of 4 ratings kept")
    assert "was already closed" in invoke_main(["campaigns", "close", "1"], monkeypatch, capsys)[1]
    assert " closed " in invoke_main(["campaigns", "list"], monkeypatch, capsys)[1]
    store = open_store()
    with store.session_scope() as s, pytest.raises(QueueError, match="closed"):
        claim_next(s, seeded.users["ann"], 1)
    store.close()
    app = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")
    for name, page, shown in (("boss", "campaigns", "**closed**: no more items are handed out"),
                              ("ann", "rate", "No open campaigns for you")):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params["page"] = page
        at.run()
        at.text_input(key="login_name").input(name)
        at.text_input(key="login_password").input(PASSWORD)
        next(b for b in at.button if b.label == "Log in").click()
        at.run()
        texts = "\n".join(str(e.value) for kind in (at.markdown, at.info, at.error) for e in kind)
        assert shown in texts, texts
        if name == "boss":
            assert any(b.label == "Reopen" for b in at.button)
    code, out, _err = invoke_main(["campaigns", "open", "1"], monkeypatch, capsys)
    assert code == 0 and out.startswith("reopened campaign 1 'facts': 1 of 4 ratings so far")
    assert _rate_some(seeded, 3) == 3  # the rest is handed out again
    code, _out, err = invoke_main(["campaigns", "close", "9"], monkeypatch, capsys)
    assert code == 2 and "there is no campaign 9" in err


def _rate_some(seeded: Seeded, count: int) -> int:
    """Rate up to ``count`` items of campaign 1 as the rating page does; how many were rated."""
    from evaltune.feedback_ui.queue import claim_next, submit_rating

    store = open_store()
    rated = 0
    with store.session_scope() as s:
        while rated < count and (held := claim_next(s, seeded.users["ann"], 1)) is not None:
            submit_rating(s, seeded.users["ann"], held.assignment_id, SingleAnswer(likert=4, hallucination=False))
            rated += 1
    store.close()
    return rated


def test_users_reset_password_sets_a_new_one_and_lifts_the_lock(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store()
    for _ in range(LoginLimits().max_failures):
        with pytest.raises(AuthError):
            log_in(store, "ann", "forgotten")
    with pytest.raises(LockedOut):
        log_in(store, "ann", PASSWORD)
    runner = CliRunner()
    result = runner.invoke(cli, ["users", "reset-password", "ann", "--password-stdin"], input="a new password\n")
    assert result.exit_code == 0, result.output
    assert result.output == "new password set for 'ann'; 5 failed log-ins no longer count\n"
    assert log_in(store, "ann", "a new password").name == "ann"
    with pytest.raises(AuthError, match="wrong name or password"):
        log_in(store, "ann", PASSWORD)
    prompted = runner.invoke(cli, ["users", "reset-password", "ann"], input="another password\nanother password\n")
    assert prompted.exit_code == 0 and "new password set for 'ann'" in prompted.output
    assert log_in(store, "ann", "another password").name == "ann"
    store.close()
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _out, err = invoke_main(["users", "reset-password", "ann", "--password-stdin"], monkeypatch, capsys)
    assert code == 2 and "at least 8 characters" in err
    code, _out, err = invoke_main(["users", "reset-password", "anne", "--password-stdin"], monkeypatch, capsys)
    assert code == 2 and "no user 'anne' (did you mean 'ann'?)" in err  # refused before reading a password
