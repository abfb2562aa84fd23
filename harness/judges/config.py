"""Which judge a run uses: ``JudgeSpec`` and the three places that name one.

    judge:                                  # a suite's own judge (parse_judge_block)
      model: openai:http://127.0.0.1:8000/v1
      model_name: judge-model
      mode: auto                            # auto (chat, else completions), chat or completions
      device: cuda                          # a local judge's --device and --dtype (default auto for both)
      dtype: bfloat16

else ``evaltune run --judge M --judge-model-name N`` (``judge_from_options``), else ``EVALTUNE_JUDGE_MODEL`` /
``EVALTUNE_JUDGE_MODEL_NAME`` / ``EVALTUNE_JUDGE_MODE`` (``judge_from_settings``). A suite's judge comes first
because its rubric thresholds were set against that judge; the others are defaults for suites that name none.
Each front door checks the same things and names its own field in a refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evaltune import settings
from evaltune.harness.backends.base import BackendError
from evaltune.harness.backends.registry import DTYPES, LoadOptions
from evaltune.harness.suite import SuiteError
from evaltune.suggestions import did_you_mean

ENDPOINT_PREFIX = "openai:"
MODES = ("auto", "chat", "completions")
BLOCK_KEYS = ("model", "model_name", "mode", "device", "dtype")
_log = logging.getLogger("evaltune.judge")

# The suite file's ``judge:`` block, for the suite JSON Schema (harness.suite_schema) and the README.
JUDGE_BLOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The judge model of this suite's llm-rubric assertions and judge scorer (instead of --judge "
                   "or EVALTUNE_JUDGE_MODEL).",
    "properties": {
        "model": {"type": "string", "minLength": 1,
                  "description": "A local model folder, a hub id, or openai:http://HOST:PORT/v1."},
        "model_name": {"type": "string", "minLength": 1,
                       "description": "The model name an openai: endpoint serves (required for an endpoint)."},
        "mode": {"type": "string", "enum": list(MODES), "default": "auto",
                 "description": "How an endpoint is asked: chat, completions, or auto (chat, else completions)."},
        "device": {"type": "string", "pattern": "^(auto|cpu|cuda(:[0-9]+)?)$", "default": "auto",
                   "description": "Where a local judge runs: cpu, cuda, cuda:N, or auto (the GPUs, else the CPU)."},
        "dtype": {"type": "string", "enum": list(DTYPES), "default": "auto",
                  "description": "A local judge's weights' dtype; auto: bfloat16 on a GPU that has it, else "
                                 "float32."},
    },
    "required": ["model"],
    "additionalProperties": False,
    # What the parser refuses that a schema can see: an endpoint without its served name, a password in its URL.
    "allOf": [
        {"if": {"properties": {"model": {"pattern": "^openai:"}}},
         "then": {"required": ["model_name"]}},
        {"properties": {"model": {"not": {"pattern": "^openai:[^/]*//[^/@]*@"}}}},
    ],
}


class JudgeSpecError(BackendError):
    """A judge named in a way that cannot work. ``field`` is the key at fault (model, model_name or mode)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class JudgeSpec:
    """A judge as the user named it: ``model`` is a local folder, a hub id or ``openai:URL``; ``model_name`` the
    name an endpoint serves; ``mode`` which API an endpoint is asked through (auto: chat, else completions)."""

    model: str
    model_name: str | None = None
    mode: str = "auto"
    device: str = "auto"  # a local judge's --device and --dtype (harness.backends.devices); endpoints ignore them
    dtype: str = "auto"
    # Where it was named ("EVALTUNE_JUDGE_MODEL", "--judge", the suite file), for messages; not part of its identity.
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        problem = _problem(self.model, self.model_name, self.mode) or _placement_problem(self.device, self.dtype)
        if problem is not None:
            raise JudgeSpecError(*problem)

    @property
    def is_endpoint(self) -> bool:
        return self.model.startswith(ENDPOINT_PREFIX)

    @property
    def url(self) -> str:
        """An endpoint's base URL (``http://HOST:PORT/v1``); "" for a local model."""
        return self.model.removeprefix(ENDPOINT_PREFIX).strip().rstrip("/") if self.is_endpoint else ""

    def describe(self) -> str:
        """The judge in a message or a score's details: ``NAME @ HOST:PORT`` or the model's folder or hub id."""
        if self.is_endpoint:
            return f"{self.model_name} @ {urlsplit(self.url).netloc}"
        return self.model

    def identity(self) -> str:
        """What makes two specs the same judge (a run's fingerprint holds it): a folder by its absolute path."""
        folder = Path(self.model).expanduser()
        model = str(folder.resolve()) if not self.is_endpoint and folder.is_dir() else self.model
        identity = {"model": model, "model_name": self.model_name if self.is_endpoint else None,
                    "mode": self.mode if self.is_endpoint else None}
        # Only a local judge's placement changes its numbers, and only when it is not the default: every judge
        # identity stored before these settings existed stays the same.
        for key in ("device", "dtype"):
            if not self.is_endpoint and getattr(self, key) != "auto":
                identity[key] = getattr(self, key)
        return json.dumps(identity, sort_keys=True)

    @property
    def load_options(self) -> LoadOptions:
        """How a local judge is loaded: its ``device`` and ``dtype``."""
        return LoadOptions(dtype=self.dtype, device=self.device)


def _placement_problem(device: Any, dtype: Any) -> tuple[str, str] | None:
    """(field, what is wrong) for a local judge's device or dtype, else None (spelling only: whether this
    machine has the GPU is checked when the judge loads)."""
    for key, value in (("device", device), ("dtype", dtype)):
        try:
            LoadOptions(**{key: value})
        except (BackendError, TypeError):
            choices = "cpu, cuda, cuda:N or auto" if key == "device" else ", ".join(DTYPES)
            return key, f"'{value}' is not one of {choices}"
    return None


def _problem(model: Any, model_name: Any, mode: Any) -> tuple[str, str] | None:
    """(field, what is wrong and the fix) for the first thing wrong with a judge's fields, else None."""
    if not isinstance(model, str) or not model.strip():
        return "model", "name the judge model: a local folder, a hub id, or openai:http://HOST:PORT/v1"
    if model_name is not None and (not isinstance(model_name, str) or not model_name.strip()):
        return "model_name", "must be the non-empty name of the model the endpoint serves"
    if mode not in MODES:
        return "mode", f"'{mode}' is not one of {', '.join(MODES)}"
    if model.strip().startswith(("http://", "https://")):
        return "model", f"write an endpoint as openai:{model.strip()}"
    if model.strip().startswith("model:"):
        return "model", ("a judge is named by its folder, hub id or endpoint, not a stored model version; "
                         "'evaltune models show' prints where a stored model is")
    if not model.startswith(ENDPOINT_PREFIX):
        return None
    parts = urlsplit(model.removeprefix(ENDPOINT_PREFIX).strip())
    if parts.username or parts.password:
        # Refused without echoing the URL: what sits before the @ is often an API key.
        return "model", ("the endpoint URL holds a user name or password (before '@'); remove it and put the key "
                         "in EVALTUNE_OPENAI_API_KEY, so that it is never stored, printed or reported")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "model", f"'{model}' has no http(s) URL; write openai:http://HOST:PORT/v1"
    if not model_name:
        return "model_name", f"the endpoint {model} needs the name of the model it serves"
    return None


def parse_judge_block(value: Any, source: str) -> JudgeSpec:
    """The suite file's ``judge:`` block as a ``JudgeSpec``; raises ``SuiteError`` naming ``source`` (the file and
    line), the field (``judge.model``, ...) and the fix."""
    if not isinstance(value, Mapping):
        raise SuiteError(source, "must be a mapping such as {model: openai:http://HOST:PORT/v1, model_name: NAME} "
                                 "or {model: ./judge-folder}", field="judge")
    for key in value:
        if key not in BLOCK_KEYS:
            hint = did_you_mean(key, BLOCK_KEYS) if isinstance(key, str) else ""
            raise SuiteError(source, f"unknown key '{key}'{hint}; judge holds only: {', '.join(BLOCK_KEYS)}",
                             field=f"judge.{key}")
    model, model_name, mode = value.get("model"), value.get("model_name"), value.get("mode", "auto")
    device, dtype = value.get("device", "auto"), value.get("dtype", "auto")
    problem = _problem(model, model_name, mode) or _placement_problem(device, dtype)
    if problem is not None:
        raise SuiteError(source, problem[1], field=f"judge.{problem[0]}")
    return JudgeSpec(str(model).strip(), str(model_name).strip() if model_name else None, mode, device, dtype,
                     origin=f"{source}: judge")


def judge_from_options(judge: str | None, judge_model_name: str | None, mode: str = "auto") -> JudgeSpec | None:
    """``--judge`` / ``--judge-model-name`` as a ``JudgeSpec`` (None without ``--judge``); raises
    ``JudgeSpecError`` naming the option at fault."""
    if judge is None:
        if judge_model_name is not None:
            raise JudgeSpecError("model", "--judge-model-name needs --judge openai:http://HOST:PORT/v1")
        return None
    options = {"model": "--judge", "model_name": "--judge-model-name", "mode": "--judge-mode"}
    problem = _problem(judge, judge_model_name, mode)
    if problem is not None:
        raise JudgeSpecError(problem[0], f"{options[problem[0]]}: {problem[1]}")
    return JudgeSpec(judge.strip(), judge_model_name.strip() if judge_model_name else None, mode, origin="--judge")


def judge_from_settings() -> JudgeSpec | None:
    """The judge ``EVALTUNE_JUDGE_MODEL`` (``_NAME``, ``_MODE``) names, None when unset; raises
    ``settings.SettingError`` naming the variable at fault."""
    model, model_name, mode = settings.judge_model()
    if not model:
        return None
    variables = {"model": "JUDGE_MODEL", "model_name": "JUDGE_MODEL_NAME", "mode": "JUDGE_MODE"}
    problem = _problem(model, model_name or None, mode or "auto")
    if problem is not None:
        raise settings.SettingError(f"{settings.PREFIX}{variables[problem[0]]}: {problem[1]}")
    return JudgeSpec(model, model_name or None, mode or "auto", origin=f"{settings.PREFIX}JUDGE_MODEL")


def configured_judge(suite_judge: JudgeSpec | None, given: JudgeSpec | None = None) -> JudgeSpec | None:
    """The judge a run uses: the suite's own, else the one given (``--judge``), else the settings'; None when
    nothing names one (judged checks are then skipped, saying how to name one)."""
    if suite_judge is not None:
        if given is not None and given != suite_judge:
            _log.warning("the suite names its own judge (%s); --judge %s is not used for it",
                         suite_judge.describe(), given.describe())
        return suite_judge
    return given if given is not None else judge_from_settings()
