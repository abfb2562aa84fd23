"""The built-in backends, registered by ``--model`` prefix. Resolving is cheap; each ``load`` imports its backend
(torch and transformers for ``hf``) only when a model of that kind is loaded.

A new built-in backend is one more provider class here (or, for a package of its own, a class anywhere and an
entry point in the group ``evaltune.backends``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from evaltune.harness.backends.base import Backend, BackendError
from evaltune.harness.backends.hf import resolve_model_location  # no torch: that is imported by HFBackend
from evaltune.harness.backends.hf_checks import (
    check_adapter,
    check_adapter_fits,
    check_model_config,
    check_not_a_file,
)
from evaltune.harness.backends.registry import LoadOptions, ModelRequest, backend
from evaltune.harness.default_model import (
    DEFAULT_HUB_ID,
    DEFAULT_MODEL_NAME,
    default_model_cache,
    default_model_dir,
    ensure_default_model,
    is_converted,
    online,
)
from evaltune.harness.model_resolution import ResolvedModel


@backend("hf")
class HFProvider:
    """``default`` (SmolLM2-135M-Instruct), a local transformers folder or a hub id, with an optional adapter."""

    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        check_not_a_file(target)
        adapter = check_adapter(request.adapter) if request.adapter else None
        suffix = f" + {Path(adapter).name}" if adapter else ""
        if target == "default":
            name = DEFAULT_MODEL_NAME + suffix
            if online():
                return ResolvedModel("hf", DEFAULT_HUB_ID, None, adapter, name, request.threads)
            cache = default_model_cache(request.home)
            folder = str(default_model_dir(cache).resolve())
            return ResolvedModel("hf", folder, None, adapter, name, request.threads, str(cache.resolve()))
        location, is_local = resolve_model_location(target)
        if is_local:
            check_model_config(Path(location))
            if adapter:
                check_adapter_fits(Path(adapter), Path(location), request.adapter or "")
        name = (Path(location).name if is_local else location) + suffix
        return ResolvedModel("hf", location, None, adapter, name, request.threads)

    def load(self, model: ResolvedModel, options: LoadOptions) -> Backend:
        from evaltune.harness.backends.hf import HFBackend, HFConfig

        if model.default_cache and not is_converted(Path(model.location)):
            ensure_default_model(Path(model.default_cache))
        return HFBackend(HFConfig(model.location, model.adapter_path, options.dtype, options.device, model.threads,
                                  options.max_batch_size))


@backend("openai")
class OpenAIProvider:
    """Any OpenAI-compatible endpoint, or several serving one model: ``openai:http://HOST:PORT/v1[,http://...]``
    with ``--model-name``."""

    def resolve(self, target: str, request: ModelRequest) -> ResolvedModel:
        spec = f"openai:{target}"
        bases = _endpoint_bases(spec, target)
        if not request.model_name:
            raise BackendError(f"'{spec}' needs the name of the model the server serves; pass --model-name NAME "
                               f"(see {bases[0]}/models)")
        if request.adapter:
            raise BackendError(
                f"an adapter cannot be applied to the endpoint in '{spec}'; load it on the server "
                "(for vLLM: --lora-modules NAME=PATH) and pass --model-name NAME"
            )
        name = request.model_name
        hosts = ",".join(urlsplit(base).netloc for base in bases)
        return ResolvedModel("openai", ",".join(bases), name, None, f"{name} @ {hosts}")

    def load(self, model: ResolvedModel, options: LoadOptions) -> Backend:
        from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig(model.location, model.served_model or "", concurrency=options.concurrency))


def _endpoint_bases(spec: str, target: str) -> tuple[str, ...]:
    """The base URL of each comma-separated endpoint in ``target``, checked and written out in full. Raises
    BackendError naming the entry at fault (never echoing a URL that holds a password)."""
    urls = [url.strip() for url in target.split(",")]
    several = len(urls) > 1
    bases: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.username or parts.password:
            # Refused without echoing the URL: what sits before the @ is often an API key.
            raise BackendError(
                "the openai: endpoint URL holds a user name or password (before '@'); remove it from the URL and "
                "put the key in EVALTUNE_OPENAI_API_KEY, so that it is never stored, printed or reported"
            )
        if several and not url:
            raise BackendError(f"'{spec}' has an empty endpoint (a comma at an end, or two in a row); "
                               "write openai:http://HOST:PORT/v1,http://HOST2:PORT/v1")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            if several:
                raise BackendError(f"'{spec}': '{url}' has no http(s) URL; write each endpoint as "
                                   "http://HOST:PORT/v1, separated by commas")
            raise BackendError(f"'{spec}' has no http(s) URL; write openai:http://HOST:PORT/v1")
        # "http://host:8000" means the usual OpenAI prefix; any explicit path is kept as written.
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") or "/v1", "", ""))
        if base in bases:
            raise BackendError(f"'{spec}' names the endpoint {base} twice; name each endpoint once")
        bases.append(base)
    return tuple(bases)
