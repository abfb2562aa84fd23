"""The models behind ``nli_contradiction`` and ``judge``: where they are, how they are loaded, how they answer.

A model is named by the user (never downloaded by us): a local folder, a hub id (which needs the
hub to be reachable, or the model already in the Hugging Face cache), or an OpenAI-compatible
endpoint written ``openai:http://HOST:PORT/v1`` (the served model's name from ``*_NAME``, the key
from ``EVALTUNE_OPENAI_API_KEY`` or ``OPENAI_API_KEY``). Local models load once per process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evaltune import settings
from evaltune.metrics.model_loaders.embeddings import scoring_device

ENDPOINT_PREFIX = "openai:"
BATCH_SIZE = 8
YES, NO = "Yes", "No"


@dataclass(frozen=True)
class ModelRef:
    """A user-named model: ``location`` is an absolute folder, a hub id or an endpoint base URL."""

    location: str
    endpoint: bool = False
    served_name: str = ""

    def describe(self) -> str:
        return f"{self.served_name} at {self.location}" if self.endpoint else self.location


class ModelLoadError(RuntimeError):
    """A named model could not be loaded or asked; the message says which setting to fix."""


def model_from_env(variable: str) -> ModelRef | None:
    """The model named by environment ``variable`` (None when unset): folder, hub id or openai:URL."""
    value, name = settings.named_model(variable.removeprefix(settings.PREFIX).removesuffix("_MODEL"))
    if not value:
        return None
    if value.startswith(ENDPOINT_PREFIX) or value.startswith(("http://", "https://")):
        url = value.removeprefix(ENDPOINT_PREFIX).rstrip("/")
        if not name:
            raise ModelLoadError(f"{variable}={value} is an endpoint; set {variable}_NAME to the model it serves")
        return ModelRef(url, endpoint=True, served_name=name)
    folder = Path(value).expanduser()
    # An existing folder is used by its absolute path, so transformers never asks the hub about it.
    return ModelRef(str(folder.resolve()) if folder.is_dir() else value)


def _load(kind: str, location: str) -> tuple[Any, Any]:
    import torch
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(location)
        model = getattr(transformers, kind).from_pretrained(location, dtype=torch.float32)
        model = model.to(scoring_device()).eval()
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"could not load '{location}' as {kind}: {error}") from error
    return tokenizer, model


@lru_cache(maxsize=4)
def load_classifier(location: str) -> tuple[Any, Any, int]:
    """(tokenizer, model, index of the contradiction label), loaded once per location."""
    tokenizer, model = _load("AutoModelForSequenceClassification", location)
    labels = {int(i): str(name) for i, name in model.config.id2label.items()}
    found = [i for i, name in labels.items() if name.lower().startswith("contradict")]
    if not found:
        raise ModelLoadError(f"'{location}' has no contradiction label (its labels: {sorted(labels.values())})")
    return tokenizer, model, found[0]


@lru_cache(maxsize=4)
def load_causal(location: str) -> tuple[Any, Any]:
    """(tokenizer, causal LM), loaded once per location."""
    tokenizer, model = _load("AutoModelForCausalLM", location)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def contradiction_probabilities(location: str, premises: Sequence[str], hypotheses: Sequence[str]) -> list[float]:
    """P(contradiction) of each (premise, hypothesis) pair under the local NLI classifier at ``location``."""
    import torch

    tokenizer, model, index = load_classifier(location)
    probabilities: list[float] = []
    for start in range(0, len(premises), BATCH_SIZE):
        batch = tokenizer(
            list(premises[start : start + BATCH_SIZE]),
            list(hypotheses[start : start + BATCH_SIZE]),
            padding=True,
            truncation="only_first",  # a long passage is cut, never the statement being checked
            max_length=min(512, tokenizer.model_max_length),
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = model(**batch.to(model.device)).logits.float()
        probabilities.extend(torch.softmax(logits, dim=-1)[:, index].tolist())
    return probabilities


def yes_probabilities(model: ModelRef, prompts: Sequence[str]) -> list[float | None]:
    """P(" Yes") / (P(" Yes") + P(" No")) as the next words after each prompt; None where unreadable."""
    if model.endpoint:
        return _endpoint_yes(model, prompts)
    return list(_local_yes(model.location, prompts))


def _render(tokenizer: Any, prompt: str) -> tuple[str, str, str]:
    """(text, yes, no): the chat template's assistant turn when the model has one, else the plain prompt."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return text, YES, NO
    return prompt, f" {YES}", f" {NO}"


def _local_yes(location: str, prompts: Sequence[str]) -> list[float]:
    tokenizer, model = load_causal(location)
    rows: list[tuple[list[int], int]] = []  # token ids, and how many at the end are the answer
    for prompt in prompts:
        text, yes, no = _render(tokenizer, prompt)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for answer in (yes, no):
            answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
            limit = int(getattr(model.config, "max_position_embeddings", 2048)) - len(answer_ids)
            rows.append((prompt_ids[-limit:] + answer_ids, len(answer_ids)))  # keep the prompt's end
    scores = _continuation_logprobs(tokenizer, model, rows)
    return [1.0 / (1.0 + math.exp(scores[2 * i + 1] - scores[2 * i])) for i in range(len(prompts))]


def _continuation_logprobs(tokenizer: Any, model: Any, rows: list[tuple[list[int], int]]) -> list[float]:
    """Summed log-probability of each row's last ``n`` tokens given the tokens before them."""
    import torch

    totals: list[float] = []
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        width = max(len(ids) for ids, _ in batch)
        # Right padding: positions stay 0..n-1 for every row, so no position ids are needed.
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (ids, _) in enumerate(batch):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for r, (ids, n) in enumerate(batch):
            positions = range(len(ids) - n, len(ids))
            totals.append(sum(float(logprobs[r, p - 1, ids[p]]) for p in positions))
    return totals


def _endpoint_yes(model: ModelRef, prompts: Sequence[str]) -> list[float | None]:
    import requests

    key = settings.openai_api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def ask(prompt: str) -> float | None:
        body = {"model": model.served_name, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 20}
        try:
            response = requests.post(f"{model.location}/completions", json=body, headers=headers, timeout=120)
            response.raise_for_status()
            return read_yes_no(response.json()["choices"][0])
        except (requests.RequestException, KeyError, IndexError, ValueError) as error:
            raise ModelLoadError(f"the judge endpoint {model.describe()} failed: {error}") from error

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(ask, prompts))


def read_yes_no(choice: dict[str, Any]) -> float | None:
    """P(yes) from a completions choice: its top log-probs when the server sent them, else its text."""
    top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
    if top:
        mass = {YES: 0.0, NO: 0.0}
        for token, logprob in top.items():
            word = token.strip().capitalize()
            if word in mass:
                mass[word] += math.exp(logprob)
        if mass[YES] + mass[NO] > 0:
            return mass[YES] / (mass[YES] + mass[NO])
    word = str(choice.get("text", "")).strip().capitalize()
    return 1.0 if word.startswith(YES) else 0.0 if word.startswith(NO) else None
