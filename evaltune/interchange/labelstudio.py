"""Label Studio: a campaign's items as Label Studio tasks (JSON import format) with a labeling config that asks our
questions, and Label Studio's JSON export of the annotations read back as ratings of that campaign.

Tasks carry ``data``: ``prompt``, ``reference``, ``output`` (or ``output_a`` and ``output_b`` for A/B), and our
``campaign_id``, ``campaign_item_id`` and ``item_key``. Label Studio gives tasks its own ids when they are imported,
so annotations are matched back by ``data.campaign_item_id``, never by Label Studio's task id.

The labeling config (``labeling_config``): ``likert`` (Rating, 1-5), ``hallucination`` (Choices yes/no), ``spans``
(Labels on the output's text, with character offsets), ``correction`` and ``comment`` (TextArea); for A/B,
``choice`` (Pairwise: left is A, right is B) and ``verdict`` (Choices: tie, both bad). An annotation's
``completed_by`` is a Label Studio user id (or a user object with an e-mail, as some versions write it): map ids to
our users with ``--user-map ID=NAME``; e-mails and user names are matched to our user names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from evaltune.interchange.campaign_io import (
    CampaignTask,
    ExchangeError,
    ImportedAnswer,
    load_export,
    resolve_annotator,
)

SPAN_LABEL = "Hallucinated"
_VERDICTS = {"tie": "tie", "both bad": "both_bad"}


def labeling_config(pairwise: bool, guidelines: str = "") -> str:
    """The Label Studio labeling config (XML) that asks a campaign's questions."""
    header = f'  <Header value={quoteattr(guidelines[:500])} size="6"/>\n' if guidelines.strip() else ""
    common = (f'<View>\n{header}  <Header value="Prompt"/>\n  <Text name="prompt" value="$prompt"/>\n'
              '  <Header value="Right answer"/>\n  <Text name="reference" value="$reference"/>\n')
    if pairwise:
        return (common + '  <Header value="A"/>\n  <Text name="output_a" value="$output_a"/>\n'
                '  <Header value="B"/>\n  <Text name="output_b" value="$output_b"/>\n'
                '  <Pairwise name="choice" toName="output_a,output_b"/>\n'
                '  <Choices name="verdict" toName="output_a" choice="single" showInline="true">\n'
                '    <Choice value="tie" hotkey="t"/>\n    <Choice value="both bad" hotkey="x"/>\n  </Choices>\n'
                '  <TextArea name="comment" toName="output_a" placeholder="Comment (optional)"/>\n</View>\n')
    return (common + '  <Header value="Output: select the unsupported text"/>\n'
            f'  <Labels name="spans" toName="output">\n    <Label value="{SPAN_LABEL}" background="#ffb3b3" '
            'hotkey="h"/>\n  </Labels>\n  <Text name="output" value="$output" granularity="symbol"/>\n'
            '  <Rating name="likert" toName="output" maxRating="5" required="true"/>\n'
            '  <Choices name="hallucination" toName="output" choice="single" showInline="true">\n'
            '    <Choice value="yes" hotkey="y"/>\n    <Choice value="no" hotkey="n"/>\n  </Choices>\n'
            '  <TextArea name="correction" toName="output" placeholder="A corrected answer (optional)"/>\n'
            '  <TextArea name="comment" toName="output" placeholder="Comment (optional)"/>\n</View>\n')


def task_data(task: CampaignTask) -> dict[str, Any]:
    """One task in Label Studio's import format: ``{"data": {...}}``."""
    data: dict[str, Any] = {"prompt": task.prompt, "reference": " | ".join(task.references) or "(none)"}
    if len(task.outputs) == 2:
        data["output_a"], data["output_b"] = task.outputs
    else:
        data["output"] = task.outputs[0]
    data |= {"campaign_id": task.campaign_id, "campaign_item_id": task.campaign_item_id, "item_key": task.item_key}
    return {"data": data}


def write_tasks(tasks: list[CampaignTask], pairwise: bool, guidelines: str, path: Path) -> Path:
    """Write the tasks to ``path`` (JSON) and the labeling config beside it (``NAME.config.xml``); returns where the
    config went."""
    path.write_text(json.dumps([task_data(t) for t in tasks], ensure_ascii=False, indent=1), encoding="utf-8")
    config = path.with_suffix(".config.xml")
    config.write_text(labeling_config(pairwise, guidelines), encoding="utf-8")
    return config


def _completed_by(annotation: Mapping[str, Any]) -> list[str]:
    """The annotator as Label Studio wrote them: an id, or a user object; ``created_username`` is "email, id"."""
    who = annotation.get("completed_by")
    candidates = []
    if isinstance(who, Mapping):
        candidates += [str(who[k]) for k in ("id", "email", "username") if who.get(k) not in (None, "")]
    elif who is not None:
        candidates.append(str(who))
    created = str(annotation.get("created_username") or "")
    candidates += [part.strip() for part in created.split(",") if part.strip()]
    return candidates


def _answer(task_label: str, item_id: int, annotator: str, results: list[Any]) -> ImportedAnswer:
    values: dict[str, Any] = {"spans": []}
    for result in results:
        if not isinstance(result, Mapping) or not isinstance(result.get("value"), Mapping):
            raise ExchangeError(f"{task_label}: an annotation result without a value; re-export from Label Studio")
        name, value = result.get("from_name"), result["value"]
        if name == "likert":
            values["likert"] = int(value.get("rating", 0))
        elif name == "hallucination":
            values["hallucination"] = (value.get("choices") or [""])[0] == "yes"
        elif name == "spans":
            values["spans"].append([value.get("start"), value.get("end")])
        elif name in ("correction", "comment"):
            values[name] = "\n".join(value.get("text") or []) or None
        elif name == "choice":
            values["choice"] = {"left": "a", "right": "b"}.get(str(value.get("selected")))
        elif name == "verdict":
            values["choice"] = _VERDICTS.get((value.get("choices") or [""])[0])
    if any(not isinstance(v, int) for span in values["spans"] for v in span):
        raise ExchangeError(f"{task_label}: a span without character offsets (start, end); label text, not "
                            "sentences or pages, in the output")
    return ImportedAnswer(task=task_label, campaign_item_id=item_id, annotator=annotator, **values)


def read_annotations(path: Path, session: Any, campaign_id: int, user_map: Mapping[str, str]
                     ) -> tuple[list[ImportedAnswer], int]:
    """The answers of Label Studio's JSON export at ``path``, and how many cancelled (skipped) annotations were left
    out. Raises ``ExchangeError`` naming the task for a task of another campaign or an unknown annotator."""
    answers, cancelled = [], 0
    tasks = load_export(path, tool="Label Studio's JSON export", fix="export the project from Label Studio as JSON")
    for number, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, Mapping) else None
        label = f"{path.name}: task {task.get('id', '#' + str(number)) if isinstance(task, Mapping) else number}"
        if not isinstance(data, Mapping) or not isinstance(data.get("campaign_item_id"), int):
            raise ExchangeError(f"{label}: no data.campaign_item_id; import only tasks exported by 'evaltune "
                                "campaigns export --to labelstudio'")
        if data.get("campaign_id") not in (None, campaign_id):
            raise ExchangeError(f"{label}: exported from campaign {data['campaign_id']}, not {campaign_id}; run "
                                f"the import with --campaign {data['campaign_id']}")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                cancelled += 1
                continue
            annotator = resolve_annotator(session, _completed_by(annotation), user_map, label)
            answers.append(_answer(label, data["campaign_item_id"], annotator, annotation.get("result") or []))
    return answers, cancelled
