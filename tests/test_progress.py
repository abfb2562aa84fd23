"""Progress on the terminal: the bar helper, the callbacks that move it inside a batch, and a command line that
draws bars on a terminal only, and none while it prints JSON."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evaltune import progress
from evaltune.cli import cli
from evaltune.db.engine import Store
from evaltune.harness.backends.base import (
    Accepts,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    OutputsDone,
    Prompt,
)
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.loaders import load_suite
from evaltune.harness.model_resolution import ModelRecord
from evaltune.harness.runner import RunOptions, run_suite
from evaltune.harness.suite import GenerationSettings
from evaltune.progress import Progress, printing, silenced
from tests.conftest import invoke_main


class Terminal(io.StringIO):
    """Text written to a terminal, as far as a bar can tell."""

    def isatty(self) -> bool:
        return True


def test_a_callback_moves_the_bar_and_the_bar_closes_at_its_total() -> None:
    screen = Terminal()
    bar = Progress("generating", total=10, unit="output", stream=screen)
    on_progress = bar.update_to  # what a command hands the runner
    on_progress(3, 10)
    bar.advance(4)  # what a backend's per-output callback does
    bar.note("scorer exact_match")
    assert bar.done == 7 and "7/10" in screen.getvalue() and "exact_match" in screen.getvalue()
    on_progress(10, 10)
    assert bar.closed and screen.getvalue().endswith("\r")  # taken off the line when done
    drawn = screen.getvalue()
    bar.advance()
    assert bar.done == 10 and screen.getvalue() == drawn  # a closed bar ignores later updates


def test_a_bar_draws_nothing_off_a_terminal_or_when_silenced() -> None:
    piped = io.StringIO()  # a file or a pipe: not a terminal
    with Progress("scoring", total=3, stream=piped) as bar:
        bar.advance(2)
    assert piped.getvalue() == "" and bar.done == 2
    screen = Terminal()
    with silenced(), Progress("scoring", total=3, stream=screen) as bar:
        bar.advance(3)
    assert screen.getvalue() == "" and bar.done == 3
    with silenced(False):
        assert progress.drawn(screen)


def test_lines_printed_between_bars_arrive_whole() -> None:
    lines: list[str] = []
    with Progress("demo", total=2, stream=Terminal()) as bar:
        printing(lines.append)("base runs done")
        bar.advance()
    assert lines == ["base runs done"]


def test_the_decoding_loop_tells_each_step_how_many_rows_ended(tiny_model_dir: Path) -> None:
    backend = HFBackend(HFConfig(str(tiny_model_dir), threads=1, max_batch_size=8))
    settings = GenerationSettings(max_new_tokens=12, chat="never", batch_size=8)
    prompts = ["The capital of France is", "Hi", "Question: What is two plus two? Answer:", "x", "Water boils at"]
    requests = [GenerationRequest(p, settings) for p in prompts]
    plain = backend.generate(requests)
    # An "EOS" some rows write early and others never: rows then end at different steps of one batch.
    tokens = [backend.tokenizer(c.text, add_special_tokens=False)["input_ids"] for c in plain]
    early_eos = next(t[2] for t in tokens if len(t) >= 3)
    backend.model.generation_config.eos_token_id = early_eos
    ended: list[int] = []
    told = backend.generate(requests, on_output=ended.append)
    untold = backend.generate(requests)
    backend.close()
    assert sum(ended) == len(prompts) and len(ended) > 1, ended  # it moved inside the one batch
    assert [c.text for c in told] == [c.text for c in untold]  # the callback changes no output


class CountingBackend:
    """A backend that answers each prompt with its last word and reports each answer as it is made."""

    fingerprint = "counting"
    accepts = Accepts(chat=False, limit="text only")

    def model_input(self, prompt: Prompt) -> Prompt:
        return prompt

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        answers = []
        for request in requests:
            answers.append(Completion(str(request.prompt).split()[-1], 1, 1, 0.001))
            if on_output is not None:
                on_output(1)
        return answers

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        return [Loglikelihood(-1.0, False, 1) for _ in requests]

    def close(self) -> None:
        pass


class OlderBackend(CountingBackend):
    """An installed backend written before ``on_output`` existed."""

    fingerprint = "older"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:  # type: ignore[override]
        return super().generate(requests)


def _suite(folder: Path, items: int, word: str = "word") -> Path:
    path = folder / f"{word}.yaml"
    path.write_text(yaml.safe_dump({
        "name": word, "generation": {"batch_size": 64, "max_new_tokens": 4}, "scorers": ["exact_match"],
        "items": [{"id": f"q{i}", "input": f"Say {word}{i}", "references": [f"{word}{i}"]} for i in range(items)]}))
    return path


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_runner_moves_within_a_batch_and_an_older_backend_still_runs(store: Store, tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, 5)))
    seen: dict[str, list[tuple[int, int]]] = {}
    for backend in (CountingBackend(), OlderBackend()):
        calls = seen.setdefault(backend.fingerprint, [])
        outcome = run_suite(store.sessions, suite, backend, ModelRecord(backend.fingerprint, "test", "here"),
                            RunOptions(), on_progress=lambda done, total, calls=calls: calls.append((done, total)))
        assert outcome.generated == 5
    assert seen["counting"] == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5), (5, 5)]  # one batch of 5
    assert seen["older"] == [(0, 5), (5, 5)]  # counted when the batch ends


def _run_args(tiny_model_dir: Path, tmp_path: Path, word: str, *extra: str) -> list[str]:
    return ["run", str(_suite(tmp_path, 6, word)), "--model", str(tiny_model_dir), *extra]


def test_the_run_command_draws_bars_on_a_terminal_only(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = invoke_main(_run_args(tiny_model_dir, tmp_path, "piped"), monkeypatch, capsys)
    assert code == 0 and "\r" not in err and "generating" not in err  # captured: not a terminal
    rescored = CliRunner().invoke(cli, ["score", "1", "--scorers", "exact_match"])
    assert rescored.exit_code == 0 and "\r" not in rescored.output and "scoring" not in rescored.output
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)
    code, _out, err = invoke_main(_run_args(tiny_model_dir, tmp_path, "shown"), monkeypatch, capsys)
    assert code == 0 and "generating" in err and "output" in err and "scoring run 2" in err and "\r" in err


def test_the_run_command_draws_no_bar_while_it_prints_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)  # even on a terminal
    code, out, err = invoke_main(_run_args(tiny_model_dir, tmp_path, "quiet", "--json"), monkeypatch, capsys)
    assert code == 0 and out.lstrip().startswith("{")
    assert "\r" not in err and "generating" not in err and "scoring" not in err
    assert progress.drawn(Terminal())  # silenced only while the command ran


def test_training_moves_a_bar_per_step_on_a_terminal(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaltune.retune.config import SftConfig
    from evaltune.retune.train import train

    rows = [{"prompt": f"Question {i}?", "completion": f" Answer {i}."} for i in range(16)]
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)
    capsys.readouterr()
    result = train(str(tiny_model_dir), rows, SftConfig(epochs=1, batch_size=4), tmp_path, log=lambda _: None)
    err = capsys.readouterr().err
    assert result.adapter_dir.is_dir()
    ours = [frame for frame in err.split("\r") if frame.startswith("training:")]
    assert ours and all("/4 [" in frame and "step" in frame for frame in ours)  # 16 rows / batch 4: 4 steps


def test_the_training_callback_moves_its_bar_per_step_from_where_a_resumed_run_is() -> None:
    from types import SimpleNamespace

    from evaltune.retune.train import _JobCallback

    callback = _JobCallback(lambda _: None, lambda: False, [], [])
    state = SimpleNamespace(is_world_process_zero=True, max_steps=10, global_step=4)  # resumed at step 4
    control = SimpleNamespace(should_training_stop=False)
    callback.on_train_begin(None, state, control)
    assert callback.progress is not None and callback.progress.done == 4
    for step in (5, 6, 7):
        state.global_step = step
        callback.on_step_end(None, state, control)
    assert callback.progress.done == 7 and not callback.progress.closed
    callback.on_train_end(None, state, control)
    assert callback.progress.closed
    other = _JobCallback(lambda _: None, lambda: False, [], [])
    other.on_train_begin(None, SimpleNamespace(is_world_process_zero=False, max_steps=10, global_step=0), control)
    assert other.progress is None  # one bar per distributed run, from its first process
