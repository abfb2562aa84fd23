"""The distribution installs one import name, ``evaltune``, and leaves other distributions' files alone.

PyPI already has distributions named ``db``, ``metrics``, ``reports``, ``harness`` and ``retune``: pip does not
check who owns a file, so an install that took those top-level names would overwrite theirs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOREIGN = ("db", "metrics")  # top-level names that other distributions on PyPI own
# The fresh virtualenv sees only what is installed in it (and, through a .pth line, this one's dependencies).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _pip(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(ROOT))
    return next(out.glob("evaltune-*.whl"))


def _foreign_wheel(name: str, out: Path) -> Path:
    """A wheel of a distribution that owns the top-level package ``name``, as PyPI's does."""
    source = out / f"src-{name}"
    (source / name).mkdir(parents=True)
    (source / name / "__init__.py").write_text(f"OWNER = 'the {name} distribution'\n")
    (source / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.0.1"\n[tool.setuptools]\npackages = ["{name}"]\n')
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(source))
    return next(out.glob(f"{name}-*.whl"))


def test_the_wheel_holds_one_top_level_name_and_the_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"evaltune"}
    for expected in ("evaltune/db/alembic.ini", "evaltune/db/migrations/env.py",
                     "evaltune/harness/suites/regression.yaml", "evaltune/harness/suite.schema.json",
                     "evaltune/metrics/hf_evaluate/evaltune_scorer/evaltune_scorer.py", "evaltune/py.typed",
                     "evaltune/feedback_ui/app.py", "evaltune/feedback_ui/screens/rate.py"):
        assert expected in names, expected
    source_files = {f"{package}/{path.relative_to(folder)}" for package, folder in _source_folders().items()
                    for path in folder.rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(source_files - set(names))
    assert not missing, f"not in the wheel (list their packages in pyproject.toml): {missing[:10]}"


def _source_folders() -> dict[str, Path]:
    """Each top-level folder that installs as part of ``evaltune``, by its installed name."""
    root = Path(__file__).resolve().parent.parent
    parts = ("db", "harness", "metrics", "reports", "retune", "feedback_ui")
    return {f"evaltune/{name}": root / name for name in parts}


def _digests(site: Path, name: str) -> dict[str, str]:
    return {str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((site / name).rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _venv(path: Path) -> tuple[Path, Path]:
    """A fresh virtualenv (its python and site-packages) that sees this environment's dependencies only."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies come from this environment: a .pth line adds its site-packages to the path without
    # reading the .pth files there (so not this checkout's editable install).
    # pip is told to --ignore-installed, since this environment's own (editable) evaltune is visible too.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def test_after_install_only_evaltune_imports(wheel: Path, tmp_path: Path) -> None:
    python, _ = _venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel))
    probe = "import importlib.util as u; print([n for n in ('db', 'metrics', 'harness', 'reports', 'retune', " \
            "'feedback_ui') if u.find_spec(n)], u.find_spec('evaltune.db.engine') is not None)"
    seen = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                          env=CLEAN_ENV)
    assert seen.stdout.strip() == "[] True"


def test_installing_beside_db_and_metrics_leaves_their_files_and_imports_intact(wheel: Path, tmp_path: Path) -> None:
    python, site = _venv(tmp_path / "venv")
    for name in FOREIGN:
        foreign = _foreign_wheel(name, tmp_path)
        _pip("--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed", str(foreign))
    before = {name: _digests(site, name) for name in FOREIGN}
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel))
    assert {name: _digests(site, name) for name in FOREIGN} == before

    # A user's own metrics.py and db/ in the working folder shadow nothing of ours.
    work = tmp_path / "work"
    (work / "db").mkdir(parents=True)
    (work / "metrics.py").write_text("raise SystemExit('the user metrics.py was imported')\n")
    listed = subprocess.run([str(python), "-m", "evaltune", "scorers", "list"], cwd=work, capture_output=True,
                            text=True, env=CLEAN_ENV)
    assert listed.returncode == 0, listed.stderr
    assert "answer_match" in listed.stdout
    owners = subprocess.run([str(python), "-c", "import db, metrics; print(db.OWNER, '|', metrics.OWNER)"],
                            cwd=tmp_path, capture_output=True, text=True, check=True, env=CLEAN_ENV).stdout
    assert owners.strip() == "the db distribution | the metrics distribution"
