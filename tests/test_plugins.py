"""Plugins: a real package (tests/plugins/evaltune_example_plugin) installed with pip adds a scorer, a suite format
and a backend through entry points; broken plugins beside it are one line each and break nothing else.

The package is installed into a temporary folder (``pip install --target``) that only the ``evaltune`` processes
started here see (on their PYTHONPATH), so this test process's own registries never hold it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import Run, Score, SuiteItem

PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "evaltune_example_plugin"
ORIGIN = "plugin evaltune-example-plugin 0.1.0"

# Installed distributions whose plugins cannot be used: (distribution, module source, entry_points.txt).
BROKEN = {
    "evaltune_broken_plugin": (
        "raise RuntimeError('this plugin is broken on purpose')\n",
        "[evaltune.scorers]\nbroken = evaltune_broken_plugin\n",
    ),
    "evaltune_clash_plugin": (  # registers a scorer, then one under a taken name: neither is kept
        "from evaltune.metrics.registry import scorer\n"
        "from evaltune.metrics.records import ScoreResult\n"
        "scorer('clash_extra', family='quality')(lambda example: ScoreResult(1.0))\n"
        "scorer('exact_match', family='quality')(lambda example: ScoreResult(0.0))\n",
        "[evaltune.scorers]\nclash = evaltune_clash_plugin\n[evaltune.loaders]\nbbq = evaltune_clash_plugin:load\n",
    ),
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH holding the example plugin, installed by pip from a copy of its source (the build writes
    beside the source), and the broken plugins as installed distributions (a module and its dist-info)."""
    work = tmp_path_factory.mktemp("plugins")
    shutil.copytree(PLUGIN_SOURCE, work / "source")
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(work / "source")], check=True, capture_output=True)
    broken = work / "broken"
    broken.mkdir()
    for dist, (module, points) in BROKEN.items():
        (broken / f"{dist}.py").write_text(module, encoding="utf-8")
        info = broken / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(points, encoding="utf-8")
    return os.pathsep.join([str(site), str(broken)])


def evaltune(args: list[str], plugin_path: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m evaltune ARGS`` with the plugins installed, a private home and a SQLite store in it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [plugin_path, os.environ.get("PYTHONPATH")])),
           "EVALTUNE_HOME": str(home), "EVALTUNE_DB_URL": f"sqlite:///{home / 'store.db'}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "evaltune", *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=300)


def write_suite(home: Path, scorers: list[object], fmt: str = "qa_lines") -> Path:
    (home / "questions.txt").write_text("What is the capital of France? | Paris\nIs Paris in France? | yes | oui\n",
                                        encoding="utf-8")
    path = home / "suite.yaml"
    path.write_text(json.dumps({"name": "plugin-demo", "source": {"format": fmt, "path": "questions.txt"},
                                "scorers": scorers}), encoding="utf-8")  # JSON is YAML
    return path


def test_a_plugin_scorer_format_and_backend_run_a_suite_end_to_end(plugin_path: str, tmp_path: Path) -> None:
    suite = write_suite(tmp_path, ["exact_match", "mentions", {"name": "mentions", "word": "france"}])
    done = evaltune(["run", str(suite), "--model", "echo:demo", "--json"], plugin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    # echo answers with the prompt's words reversed: "France? of capital the is What", "France? in Paris Is"
    assert {m["name"]: m["value"] for m in summary["metrics"]} == {
        "exact_match": 0.0, "mentions": 0.5, "mentions(word=france)": 1.0}
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.sessions() as session:
        run = session.get(Run, summary["run_id"])
        assert run is not None and run.model_version.backend == "echo"
        assert list(run.scorers) == ["exact_match", "mentions", "mentions(word=france)"]
        scores = session.execute(select(Score, SuiteItem.key).join(SuiteItem, Score.item_id == SuiteItem.id)
                                 .where(Score.run_id == run.id, Score.scorer.like("mentions%")))
        stored = sorted((score.scorer, key, score.value, score.details["word"]) for score, key in scores)
    store.close()
    assert stored == [("mentions", "line-1", 0.0, "Paris"), ("mentions", "line-2", 1.0, "Paris"),
                      ("mentions(word=france)", "line-1", 1.0, "france"),
                      ("mentions(word=france)", "line-2", 1.0, "france")]


def test_scorers_list_shows_where_each_came_from_and_each_broken_plugin_in_one_line(
        plugin_path: str, tmp_path: Path) -> None:
    done = evaltune(["scorers", "list"], plugin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert ORIGIN in rows["mentions"] and "built-in" in rows["exact_match"]
    assert "parameter word (text; default Paris): the word to look for." in done.stdout
    assert "clash_extra" not in rows  # what a failing plugin registered before it failed is taken back
    problems = done.stderr.strip().splitlines()
    assert len(problems) == 2, done.stderr
    assert problems[0].startswith("warning: plugin evaltune-broken-plugin 0.1: the scorer plugin 'broken' "
                                  "(evaltune_broken_plugin) failed to import: RuntimeError: this plugin is broken")
    assert problems[1].startswith("warning: plugin evaltune-clash-plugin 0.1: the scorer plugin 'clash' ")
    assert "the scorer name 'exact_match' is already taken (a scorer, built-in)" in problems[1]
    listed = json.loads(evaltune(["scorers", "list", "--json"], plugin_path, tmp_path).stdout)
    mentions = next(entry for entry in listed["scorers"] if entry["name"] == "mentions")
    assert mentions["origin"] == ORIGIN
    assert [(p["name"], p["type"], p["default"]) for p in mentions["params"]] == [
        ("word", "text", "Paris"), ("ignore_case", "boolean", True)]
    assert len(listed["plugin_problems"]) == 2


def test_plugin_scorer_parameters_and_formats_are_checked_when_the_suite_loads(
        plugin_path: str, tmp_path: Path) -> None:
    suite = write_suite(tmp_path, ["exact_match", {"name": "mentions", "word": " "}])
    done = evaltune(["suites", "validate", str(suite)], plugin_path, tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "field 'scorers[1].word': scorer 'mentions': word must not be empty" in done.stderr
    done = evaltune(["suites", "validate", "qa_lines:questions.txt"], plugin_path, tmp_path)  # FORMAT:PATH
    assert done.returncode == 0 and done.stdout.startswith("ok: questions, 2 items"), done.stderr
    typo = write_suite(tmp_path, ["mentions"], fmt="qa_line")
    done = evaltune(["suites", "validate", str(typo)], plugin_path, tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "field 'source.format': unknown format 'qa_line'; use one of " in done.stderr
    assert ", qa_lines;" in done.stderr  # the plugin's format is offered, and the plugin that took 'bbq' named:
    assert "the loader plugin 'bbq' (evaltune_clash_plugin:load) is not used: the format name 'bbq' is taken" in (
        done.stderr)
