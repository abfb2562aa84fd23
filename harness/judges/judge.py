"""``Judge``: rubric scores and pairwise verdicts from one judge model, every question asked once (the store keeps
the answers), and the judge a scoring pass hands to the scorers (``judging_for``).

    judge = load_judge(JudgeSpec("openai:http://127.0.0.1:8000/v1", "judge-model"), JudgeCache(session))
    scores = judge.rubric([RubricRequest(question, answer, "Answers in one sentence.")])
    verdicts = judge.pairwise([PairRequest(question, output_of_run_1, output_of_run_2)])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.orm import Session

from evaltune import settings
from evaltune.harness.backends.base import BackendError
from evaltune.harness.judges.cache import JudgeCache, call_key
from evaltune.harness.judges.clients import JudgeClient, JudgeError, JudgePrompt, JudgeReply, load_client
from evaltune.harness.judges.config import JudgeSpec
from evaltune.harness.judges.pairwise import PairRequest, PairVerdict, pair_prompts, verdict
from evaltune.harness.judges.rubric import read_score, rubric_prompt
from evaltune.harness.model_resolution import resolve_model
from evaltune.metrics.judging import RubricRequest, RubricScore, judging

CHUNK = 64  # questions asked (and stored) at a time, so that a long judging pass keeps what it has


class Judge:
    """A loaded judge. ``calls`` counts the questions actually put to the model (not answered by the cache)."""

    def __init__(self, client: JudgeClient, cache: JudgeCache | None = None):
        self.client = client
        self.cache = cache
        self.calls = 0

    @property
    def fingerprint(self) -> str:
        return self.client.fingerprint

    def describe(self) -> str:
        return self.client.describe()

    def rubric(self, requests: Sequence[RubricRequest]) -> list[RubricScore]:
        """One G-Eval score per request (``harness.judges.rubric``), in request order."""
        replies = self.ask([rubric_prompt(r) for r in requests])
        return [read_score(reply, r.scale) for r, reply in zip(requests, replies, strict=True)]

    def pairwise(self, requests: Sequence[PairRequest]) -> list[PairVerdict]:
        """One verdict per request, each asked in both orders (``harness.judges.pairwise``)."""
        asked = [prompt for r in requests for prompt in pair_prompts(r)]
        replies = self.ask(asked)
        return [verdict(replies[2 * i], replies[2 * i + 1]) for i in range(len(requests))]

    def ask(self, prompts: Sequence[JudgePrompt]) -> list[JudgeReply]:
        """The reply to each question: from the cache where it was asked before, else from the judge (a question
        asked twice in one call is asked once)."""
        keys = [call_key(self.fingerprint, p) for p in prompts]
        known = self.cache.replies(keys) if self.cache is not None else {}
        missing = list({k: p for k, p in zip(keys, prompts, strict=True) if k not in known}.items())
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            replies = self._ask_model([p for _, p in chunk])
            self.calls += len(chunk)
            known.update((k, reply) for (k, _), reply in zip(chunk, replies, strict=True))
            if self.cache is not None:
                self.cache.keep(self.describe(), self.fingerprint,
                                [(k, p, reply) for (k, p), reply in zip(chunk, replies, strict=True)])
        return [known[k] for k in keys]

    def close(self) -> None:
        self.client.close()

    def _ask_model(self, prompts: list[JudgePrompt]) -> list[JudgeReply]:
        try:
            return self.client.ask(prompts)
        except JudgeError:
            raise
        except BackendError as error:  # already free of secrets: the openai backend hides them
            raise JudgeError(f"the judge {self.describe()} failed: {error}") from error


def load_judge(spec: JudgeSpec, cache: JudgeCache | None = None) -> Judge:
    """The judge ``spec`` names, loaded (a local model's weights) or reached (an endpoint is probed). Raises
    ``JudgeError`` (a ``BackendError``) saying which judge and the fix."""
    try:
        return Judge(load_client(spec), cache)
    except JudgeError:
        raise
    except BackendError as error:
        named = f" (named by {spec.origin})" if spec.origin else ""
        raise JudgeError(f"cannot load the judge {spec.describe()}{named}: {error}") from error


def check_judge(spec: JudgeSpec) -> None:
    """Check, before a run generates anything, that ``spec``'s judge is there: a local model's folder (its weights
    are loaded only when first asked), an endpoint that answers. Raises ``JudgeError`` naming where the judge was
    named and the fix."""
    named = f" (named by {spec.origin})" if spec.origin else ""
    try:
        if spec.is_endpoint:
            load_client(spec).close()
        else:
            resolve_model(spec.model, home=settings.home())
    except BackendError as error:
        raise JudgeError(f"the judge {spec.describe()}{named}: {error}") from error


class _JudgeOnFirstUse:
    """The judge of a scoring pass, loaded only when a scorer first asks it (a run without judged checks
    never loads one)."""

    def __init__(self, spec: JudgeSpec, cache: JudgeCache | None):
        self.spec, self.cache = spec, cache
        self.judge: Judge | None = None

    def describe(self) -> str:
        return self.spec.describe()

    def rubric(self, requests: Sequence[RubricRequest]) -> list[RubricScore]:
        if self.judge is None:
            self.judge = load_judge(self.spec, self.cache)
        return self.judge.rubric(requests)

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()


@contextmanager
def judging_for(spec: JudgeSpec | None, session: Session | None = None) -> Iterator[None]:
    """Hand ``spec``'s judge to the scorers (``metrics.judging``) for the block, caching its answers through
    ``session``; None: no judge, so judged checks are skipped with how to name one."""
    if spec is None:
        with judging(None):
            yield
        return
    judge = _JudgeOnFirstUse(spec, JudgeCache(session) if session is not None else None)
    try:
        with judging(judge):
            yield
    finally:
        judge.close()
