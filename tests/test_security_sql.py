"""SQL only through bound parameters: a scan of the code for SQL built from strings, and hostile strings that
round-trip through the store intact on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from evaltune.db import Store
from evaltune.db.ratings import Campaign, Rating, User
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import create_user, log_in
from evaltune.feedback_ui.campaigns import CampaignError, create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.feedback_ui.runs_data import OutputFilter, count_outputs
from tests.fixtures.feedback_seed import seed_store

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["evaltune", "db", "harness", "metrics", "reports", "retune", "feedback_ui", "scripts", "bench"]
# Calls that take SQL text. ``execute`` also covers DB-API cursors and ``op.execute`` in migrations.
SQL_CALLS = {"text", "literal_column", "exec_driver_sql", "execute", "executemany", "executescript"}
# Statements that cannot take bound parameters (identifiers), each with why the interpolated value is safe.
ALLOWED = {
    ("bench/loadkit.py", "CREATE DATABASE \"{name}\""): "a uuid4 name for a throwaway benchmark database",
}
HOSTILE = ["'; DROP TABLE ratings; --", 'Robert"); DROP TABLE users;--', "1 OR 1=1", "%s %(x)s :name ?", "\\'; --",
           "x' UNION SELECT password_hash FROM users --"]


def _constant_name(node: ast.expr) -> bool:
    """A module constant (``SQLITE_BUSY_TIMEOUT_MS``, ``mod.LIMIT``): fixed by the code, never by a user."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return bool(name) and name.isupper()


def _built(node: ast.expr, dynamic_names: set[str]) -> bool:
    """Whether ``node`` is a string assembled at run time from something other than constants."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) and not _constant_name(v.value) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        sides = (node.left, node.right)
        stringy = any(isinstance(s, (ast.Constant, ast.JoinedStr)) and not isinstance(getattr(s, "value", ""), int)
                      for s in sides)
        return stringy or any(_built(s, dynamic_names) for s in sides)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        # str.format, or a separator's join; a query's .join(Model, ...) hangs off a call (select(...).join)
        return node.func.attr == "format" or (node.func.attr == "join" and not isinstance(node.func.value, ast.Call))
    return isinstance(node, ast.Name) and node.id in dynamic_names


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _scopes(tree: ast.Module) -> Iterator[ast.AST]:
    yield tree
    yield from (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def _findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for scope in _scopes(tree):
        body = list(ast.walk(scope))
        dynamic: set[str] = set()
        for node in body:  # names that hold a built string anywhere in this scope
            if isinstance(node, ast.Assign) and _built(node.value, set()):
                dynamic |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        relative = path.relative_to(ROOT).as_posix()
        for node in body:
            if (isinstance(node, ast.Call) and _call_name(node) in SQL_CALLS and node.args
                    and _built(node.args[0], dynamic)):
                code = ast.unparse(node)
                if not any(relative == file and snippet in code for file, snippet in ALLOWED):
                    found.append(f"{relative}:{node.lineno}: {code[:120]}")
    return sorted(set(found))


def test_the_scanner_catches_each_way_of_building_sql(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def bad(session, name, conn, cursor):\n"
        "    session.execute(text(f\"SELECT * FROM users WHERE name = '{name}'\"))\n"
        "    conn.exec_driver_sql('DELETE FROM ratings WHERE id = %s' % name)\n"
        "    cursor.execute('SELECT ' + name)\n"
        "    query = 'SELECT * FROM {}'.format(name)\n"
        "    session.execute(text(query))\n"
        "def good(session, name, cursor):\n"
        "    session.execute(text('SELECT * FROM users WHERE name = :n'), {'n': name})\n"
        "    cursor.execute(f'PRAGMA busy_timeout={TIMEOUT_MS}')\n",
        encoding="utf-8",
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [line.split(":")[1] for line in _findings(sample)] == ["2", "3", "4", "6"]
    finally:
        ROOT = saved


def test_no_sql_is_built_from_strings() -> None:
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py")) if ".venv" not in p.parts]
    assert len(files) > 50
    findings = [line for path in files for line in _findings(path)]
    assert findings == [], "SQL built from strings; pass values as bound parameters instead:\n" + "\n".join(findings)


def test_hostile_strings_round_trip_intact(store: Store) -> None:
    seeded = seed_store(store, items=2)
    admin, ann = seeded.users["admin"], seeded.users["ann1"]
    with store.session_scope() as s:
        for i, text in enumerate(HOSTILE):
            create_user(s, f"{text} {i}", "annotator", "long enough password")
        campaign = create_campaign(s, admin, name=HOSTILE[0], run_ids=seeded.run_ids[:1], guidelines=HOSTILE[1])
        campaign_id = campaign.id
        with pytest.raises(CampaignError, match="cannot read the filter"):
            create_campaign(s, admin, name="x", run_ids=seeded.run_ids[:1], filters=[f"{HOSTILE[0]}==1"])
        # A tag or suite filter is a value compared, never SQL: it is refused as a tag the runs do not have.
        with pytest.raises(CampaignError, match="unknown tag"):
            create_campaign(s, admin, name="x", run_ids=seeded.run_ids[:1], filters=[f"tag={HOSTILE[0]}"])
    with store.session_scope() as s:
        held = claim_next(s, ann, campaign_id)
        assert held is not None
        submit_rating(s, ann, held.assignment_id,
                      SingleAnswer(likert=1, hallucination=False, correction=HOSTILE[2], comment=HOSTILE[0]))
    with store.session_scope() as s:
        for text in HOSTILE:  # the text search in the Runs page, and a log-in with a hostile name
            assert count_outputs(s, seeded.run_ids[0], OutputFilter(text=text, tag=text)) == 0
    for text in HOSTILE:
        with pytest.raises(Exception, match="wrong name or password"):
            log_in(store, text, text)
    assert {"ratings", "users", "campaigns", "login_attempts"} <= set(inspect(store.engine).get_table_names())
    with store.session_scope() as s:
        names = set(s.execute(select(User.name)).scalars())
        assert {f"{text} {i}" for i, text in enumerate(HOSTILE)} <= names and len(names) == 4 + len(HOSTILE)
        stored = s.get(Campaign, campaign_id)
        assert stored is not None and (stored.name, stored.guidelines) == (HOSTILE[0], HOSTILE[1])
        rating = s.execute(select(Rating)).scalar_one()
        assert (rating.comment, rating.correction) == (HOSTILE[0], HOSTILE[2])
