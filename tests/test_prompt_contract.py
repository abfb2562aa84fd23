"""The prompt contract: the prompt of a training row is the prompt the model was evaluated on.

For every suite setting (chat auto/always/never, with and without a system prompt) and every item form (a text
or chat-message input, with and without a context passage), on the tiny model with a chat template, the same model
without one, and an OpenAI-compatible endpoint: the suite runs through the runner, every output is rated through
the rating form's submit function, retune builds a dataset from the ratings, and each row's prompt is compared with
what the backend fed the model (the text its tokenizer encoded, or the body posted to the endpoint). Items the
model cannot take (chat messages, or chat: always, without a chat template) are refused with a message naming them.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from evaltune.cli import cli
from evaltune.db.engine import Store, open_store
from evaltune.db.evaluation import Run
from evaltune.errors import UserError
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.auth import create_user
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from evaltune.harness.backends.base import Backend
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig
from evaltune.harness.model_resolution import ModelRecord
from evaltune.harness.prompts import PromptError, prompt_for
from evaltune.harness.runner import run_suite
from evaltune.harness.suite import ChatMode, GenerationSettings, Item, Message, SuiteSpec
from evaltune.retune.datasets import build_dataset, dataset_records
from evaltune.retune.strategies import StrategyParams
from tests.test_openai_backend import FakeServer

CONTEXT = "The Fenwick bridge opened in 1932 after six years of work."
# Each input holds its marker ("Question q2:"), which finds the item again in what the model was fed.
ITEMS = (
    Item("q1", "Question q1: what is the capital of France?"),
    Item("q2", "Question q2: when did the bridge open?", context=CONTEXT),
    Item("q3", (Message("system", "Be exact."), Message("user", "Question q3: how many sides has an octagon?"))),
    Item("q4", (Message("user", "Question q4: how long did the work take?"),), context=CONTEXT),
)
MARKER = re.compile(r"Question (q\d):")


class FedTexts:
    """The backend's real tokenizer, keeping every text it encodes: for generation, exactly what the model reads."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.texts: list[str] = []

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(text, str):
            self.texts.append(text)
        return self.tokenizer(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)


@dataclass
class Target:
    """A model under test: its backend, what it was fed (by item id), and a training prompt as the model reads it."""

    backend: Backend
    record: ModelRecord
    takes_chat: bool
    fed: Callable[[], dict[str, Any]]
    as_fed: Callable[[Any], Any]
    reset: Callable[[], None]


def _by_marker(prompts: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for prompt in prompts:
        match = MARKER.search(str(prompt))
        assert match is not None, prompt
        found[match.group(1)] = prompt
    return found


def _hf_target(folder: Path) -> Target:
    backend = HFBackend(HFConfig(str(folder), threads=1, max_batch_size=8))
    tokenizer = backend.tokenizer
    spy = FedTexts(tokenizer)
    backend.tokenizer = spy

    def as_fed(prompt: Any) -> Any:  # TRL renders a conversational prompt through the same template
        if isinstance(prompt, str):
            return prompt
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    record = ModelRecord(name=folder.name, backend="hf", location=str(folder))
    return Target(backend, record, backend.has_chat_template, lambda: _by_marker(spy.texts), as_fed, spy.texts.clear)


@pytest.fixture(scope="module")
def hf_chat(tiny_model_dir: Path) -> Target:
    target = _hf_target(tiny_model_dir)
    assert target.takes_chat
    return target


@pytest.fixture(scope="module")
def hf_plain(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Target:
    folder = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("plain") / "no_template")
    (folder / "chat_template.jinja").unlink()
    target = _hf_target(folder)
    assert not target.takes_chat
    return target


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Target]:
    server = FakeServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    backend = OpenAIBackend(OpenAIConfig(server.url, "fake"))

    def fed() -> dict[str, Any]:  # the messages or the text the endpoint was sent
        return _by_marker([body.get("messages", body.get("prompt")) for body in server.posts])

    def as_fed(prompt: Any) -> Any:
        return prompt  # an endpoint is sent the prompt itself; the server applies its own template

    record = ModelRecord(name="fake", backend="openai", location=server.url, served_model="fake")
    yield Target(backend, record, True, fed, as_fed, server.posts.clear)
    server.shutdown()
    server.server_close()


def _refused(target: Target, item: Item, chat: str) -> bool:
    """What the contract says: only a model without chat is refused, for chat messages or chat: always."""
    return not target.takes_chat and (not isinstance(item.input, str) or chat == "always")


def _given_chat(target: Target, item: Item, chat: str) -> bool:
    return not isinstance(item.input, str) or chat == "always" or (chat == "auto" and target.takes_chat)


def _rate_every_output(store: Store, run_id: int) -> int:
    """Open a campaign on the run and rate each output through the rating form's front door; the campaign id."""
    with store.session_scope() as session:
        account = create_user(session, "rater", "annotator", "a long password")
        campaign_id = create_campaign(session, None, name="contract", run_ids=[run_id]).id
    while True:
        with store.session_scope() as session:
            reservation = claim_next(session, account, campaign_id)
            if reservation is None:
                return campaign_id
            answer = SingleAnswer(likert=1, hallucination=False, correction="I don't know.")
            submit_rating(session, account, reservation.assignment_id, answer)


def _training_prompts(store: Store, campaign_id: int) -> dict[str, Any]:
    with store.session_scope() as session:
        dataset = build_dataset(session, campaign_id, "sft", StrategyParams(holdout=0.0))
        return _by_marker([record["prompt"] for record in dataset_records(session, dataset.id, "all")])


@pytest.mark.parametrize("system", [None, "Answer briefly."])
@pytest.mark.parametrize("chat", ["auto", "always", "never"])
@pytest.mark.parametrize("name", ["hf_chat", "hf_plain", "endpoint"])
def test_a_training_prompt_is_what_the_backend_fed_the_model(
    name: str, chat: ChatMode, system: str | None, request: pytest.FixtureRequest
) -> None:
    target: Target = request.getfixturevalue(name)
    target.reset()
    settings = GenerationSettings(max_new_tokens=4, chat=chat, system_prompt=system, batch_size=8)
    taken = [item for item in ITEMS if not _refused(target, item, chat)]
    for item in [item for item in ITEMS if item not in taken]:
        with pytest.raises(PromptError, match=rf"item '{item.id}'.* has no chat template; "):
            prompt_for(target.backend, item, settings)
    if not taken:
        return
    store = open_store()
    try:
        suite = SuiteSpec(f"contract-{chat}", tuple(taken), settings, scorers=("abstention",))
        outcome = run_suite(store.sessions, suite, target.backend, target.record)
        fed, trained = target.fed(), _training_prompts(store, _rate_every_output(store, outcome.run_id))
    finally:
        store.close()
    assert sorted(fed) == sorted(trained) == [item.id for item in taken]
    for item in taken:
        assert isinstance(trained[item.id], list) == _given_chat(target, item, chat), item.id
        assert target.as_fed(trained[item.id]) == fed[item.id], item.id


def test_a_chat_item_for_a_model_without_a_template_is_refused_before_any_run(
    hf_plain: Target, tmp_path: Path
) -> None:
    suite = tmp_path / "chatty.yaml"
    items = [{"id": "plain", "input": "Question q1: hello?"},
             {"id": "chatty", "input": [{"role": "user", "content": "Question q2: hello?"}]}]
    suite.write_text(yaml.safe_dump({"name": "chatty", "scorers": ["abstention"], "items": items}))
    result = CliRunner().invoke(cli, ["run", str(suite), "--model", hf_plain.record.location])
    assert isinstance(result.exception, UserError), result.output  # evaltune prints it as one line, exit 2
    assert str(result.exception).startswith(
        f"suite {suite}: item 'chatty' is chat messages, but the tokenizer of {hf_plain.record.location} "
        "has no chat template; give the item a text input")
    store = open_store()
    with store.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0  # nothing half-made to resume
    store.close()
