"""Settings are read in one place, bad values name the variable and the fix, and scorers leave threads alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from evaltune import settings

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("db", "harness", "metrics", "reports", "retune", "feedback_ui", "evaltune")
READS_ENVIRONMENT = re.compile(r"os\.environ(?:\.get)?\s*[\[(]\s*[\"']EVALTUNE_|os\.getenv\(\s*[\"']EVALTUNE_")


def test_no_module_but_settings_reads_an_evaltune_variable() -> None:
    readers = [str(path.relative_to(ROOT)) for part in PARTS for path in (ROOT / part).rglob("*.py")
               if path.name != "settings.py" and READS_ENVIRONMENT.search(path.read_text(encoding="utf-8"))]
    assert readers == []


@pytest.mark.parametrize(("variable", "value", "read"), [
    ("EVALTUNE_THREADS", "many", settings.threads),
    ("EVALTUNE_RESERVATION_MINUTES", "-3", settings.reservation),
    ("EVALTUNE_LOGIN_MAX_FAILURES", "0", settings.login_limits),
    ("EVALTUNE_MAX_ITEM_CHARS", "lots", settings.max_item_chars),
])
def test_a_bad_value_names_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                    read: object) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingError, match=rf"^{variable}: '{value}' is not .*; set it to one"):
        read()  # type: ignore[operator]


def test_loading_a_scorer_model_leaves_the_thread_count_alone() -> None:
    code = ("import torch; torch.set_num_threads(1); "
            "from evaltune.metrics.model_loaders.embeddings import embed; embed(['a sentence']); "
            "print(torch.get_num_threads())")
    env = {"EVALTUNE_THREADS": "2", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "1"
