"""Retune (admins): build a dataset from a campaign's ratings, queue a LoRA job, follow its status and log.

A worker (``evaltune worker``) runs the queued jobs; this page only writes to and reads from the store. Only
datasets a job can train on are offered; the others are listed with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import ModelVersion
from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns
from evaltune.feedback_ui.retune_actions import build_dataset_as, cancel_job_as, queue_job_as
from evaltune.feedback_ui.safe_text import inline, plain
from evaltune.retune import jobs
from evaltune.retune.config import CONFIGS, OptionField, RetuneConfig, config_from_options, option_fields
from evaltune.retune.datasets import EmptyDatasetError, dataset_summaries
from evaltune.retune.strategies import SHARED_PARAMETERS, Parameter, StrategyParams, parameters, strategies

MAIN_SETTINGS = ("epochs", "learning_rate", "batch_size")  # shown first, with the method's own settings


def render(account: Account) -> None:
    st.header("Retune")
    _build(account)
    _enqueue(account)
    _jobs(account)


def _build(account: Account) -> None:
    campaigns = {c.id: f"#{c.id} {c.name}" for c in app_state.read(lambda s: list_campaigns(s))}
    registered = strategies()
    with st.form("build_dataset"):
        st.subheader("1. Dataset from ratings")
        campaign_id = st.selectbox("Campaign", list(campaigns), format_func=campaigns.__getitem__, key="rt_campaign")
        strategy = st.selectbox("Strategy", list(registered), key="rt_strategy",
                                format_func=lambda name: f"{name} (rows for {registered[name].method})",
                                help=" ".join(f"{name}: {s.help}" for name, s in registered.items()))
        knobs = _strategy_inputs()
        built = st.form_submit_button("Build dataset", type="primary")
    campaign = campaign_id if campaign_id in campaigns else next(iter(campaigns), None)
    if not built or campaign is None:
        return
    try:
        params = StrategyParams(**knobs)
    except ValueError as error:
        st.error(inline(error))
        return
    try:
        counts = app_state.transaction(lambda s: build_dataset_as(s, account, int(campaign), str(strategy), params))
    except EmptyDatasetError as error:
        st.error(f"{inline(error)}. Nothing was stored.")
        return
    app_state.flash(f"Dataset built: {counts.get('train', 0)} train rows, {counts.get('holdout', 0)} held out.")
    st.rerun()


def _strategy_inputs() -> dict[str, Any]:
    """One input per strategy parameter, drawn from the registry: the shared ones in a row, then the others,
    each labelled with the strategies that read it."""
    shared = [p for p in parameters() if p.name in SHARED_PARAMETERS]
    values = {p.name: _input(p, column) for p, column in zip(shared, st.columns(len(shared)), strict=True)}
    with st.expander("Settings read by some strategies only"):
        for parameter in parameters():
            if parameter.name not in SHARED_PARAMETERS:
                users = [name for name, s in strategies().items() if parameter.name in s.parameters]
                values[parameter.name] = _input(parameter, st.container(), f" ({', '.join(users)})")
    return values


def _input(parameter: Parameter, place: Any, used_by: str = "") -> Any:
    label, key = parameter.name.replace("_", " ").capitalize() + used_by, f"rt_{parameter.name}"
    if parameter.choices:
        return place.selectbox(label, parameter.choices, index=parameter.choices.index(parameter.default), key=key,
                               help=parameter.help)
    if parameter.kind is str:
        text = place.text_input(label, value=parameter.default or "", key=key, help=parameter.help).strip()
        return (text or None) if parameter.optional else text
    cast = int if parameter.kind is int else float
    low, high = (None if limit is None else cast(limit) for limit in (parameter.low, parameter.high))
    # Open ends (holdout < 1) are left to StrategyParams, whose message names the parameter.
    return cast(place.number_input(label, min_value=low, max_value=high, value=cast(parameter.default), key=key,
                                   help=parameter.help))


@dataclass(frozen=True)
class _Choices:
    datasets: dict[int, str]  # id -> label, of the datasets a job can train on
    methods: dict[int, str]  # dataset id -> the method its rows are shaped for
    unusable: list[str]  # why each other dataset cannot be retuned
    models: dict[int, str]  # base model version id -> label


def _choices(session: Session) -> _Choices:
    datasets, methods, unusable = {}, {}, []
    for d in dataset_summaries(session):
        problem = jobs.dataset_problem(d)
        if problem:
            unusable.append(problem)
        else:
            datasets[d.id] = f"#{d.id} {d.name} ({d.strategy}, {d.train_rows} train rows) -> {d.method}"
            methods[d.id] = d.method
    models = {m.id: f"model:{m.id} {m.name}" for m in session.scalars(
        select(ModelVersion).where(ModelVersion.adapter_path.is_(None), ModelVersion.backend == "hf")
        .order_by(ModelVersion.id.desc()))}
    return _Choices(datasets, methods, unusable, models)


def _step(default: float) -> float:
    """A +/- step of the default's order of magnitude (1e-4 for 5e-4), so a click nudges rather than jumps."""
    return 10.0 ** math.floor(math.log10(default)) if default > 0 else 0.01


def _widget(container: Any, option: OptionField, key: str) -> Any:
    """One config field as a widget with its default and help (the same as ``evaltune retune --help``)."""
    label, help_text = option.label, option.help
    if option.kind is bool:
        return container.checkbox(label, value=option.default, help=help_text, key=key)
    if option.kind is int:
        return int(container.number_input(label, value=option.default, step=1, help=help_text, key=key))
    if option.kind is float:
        return float(container.number_input(label, value=float(option.default), step=_step(option.default),
                                            format="%g", help=help_text, key=key))
    if option.kind is tuple:
        text = container.text_input(label, value=", ".join(option.default), help=help_text + " Comma-separated.",
                                    key=key)
        return tuple(name.strip() for name in text.split(",") if name.strip())
    return container.text_input(label, value=option.default, help=help_text, key=key)


def config_widgets(cls: type[RetuneConfig], key: str) -> dict[str, Any]:
    """A widget for every field of a method's config (``retune.config``); their values by field name. The method's
    own fields and the schedule come first, the LoRA and saving details under "More settings"."""
    shared = {item.name for item in fields(RetuneConfig)}
    options = option_fields([cls])
    first = [o for o in options if o.name in MAIN_SETTINGS or o.name not in shared]
    columns = st.columns(3)
    values = {o.name: _widget(columns[i % 3], o, f"{key}_{o.name}") for i, o in enumerate(first)}
    with st.expander("More settings"):
        for option in options:
            if option.name not in values:
                values[option.name] = _widget(st, option, f"{key}_{option.name}")
    return values


def _enqueue(account: Account) -> None:
    choices = app_state.read(_choices)
    st.subheader("2. Queue a LoRA retune")
    # Dataset, base and method sit outside the form: the form below shows the chosen method's own settings, so it
    # must be drawn again when the method changes. A keyed selectbox drawn while it had no options keeps None
    # after options appear: fall back to the first.
    dataset_id = st.selectbox("Dataset", list(choices.datasets), format_func=choices.datasets.__getitem__,
                              key="rt_dataset")
    dataset = dataset_id if dataset_id in choices.datasets else next(iter(choices.datasets), None)
    if choices.unusable:
        with st.expander(f"{len(choices.unusable)} dataset(s) cannot be retuned"):
            for reason in choices.unusable:
                st.caption(inline(reason))
    base_id = st.selectbox("Base model", list(choices.models), format_func=choices.models.__getitem__, key="rt_base")
    base = base_id if base_id in choices.models else next(iter(choices.models), None)
    # A dataset's rows have one method's columns: the method is the dataset's, not a choice.
    method = choices.methods.get(dataset or 0, "dpo")
    st.caption(f"Method: {CONFIGS[method].summary}, as the dataset's rows are built for it.")
    with st.form(f"enqueue_job_{method}"):
        values = config_widgets(CONFIGS[method], key=f"rt_{method}")
        suites = st.text_input("Re-run these suites afterwards (comma-separated)", value="smoke", key="rt_suites")
        queued = st.form_submit_button("Queue job", type="primary")
    if not queued:
        return
    if dataset is None or base is None:
        st.error("Build a dataset with training rows and run a base model first: there is nothing to retune yet.")
        return
    try:
        config = config_from_options(method, values)
    except ValueError as error:
        st.error(inline(error))
        return
    names = [name.strip() for name in suites.split(",") if name.strip()]
    try:
        job_id = app_state.transaction(lambda s: queue_job_as(s, account, int(dataset), int(base), config, names))
    except jobs.JobError as error:
        st.error(inline(error))
        return
    app_state.flash(f"Queued job #{job_id}; start a worker with `evaltune worker` if none is running.")
    st.rerun()


def _job_rows(session: Session) -> list[dict[str, Any]]:
    return [{"id": j.id, "status": j.status, "method": j.method, "dataset": j.dataset_id, "base": jobs.base_label(j),
             "adapter": j.output_model_id, "runs": j.follow_up_run_ids, "worker": j.worker, "error": j.error,
             "log": j.log} for j in jobs.list_jobs(session)]


def _jobs(account: Account) -> None:
    st.subheader("3. Jobs")
    rows = app_state.read(_job_rows)
    if not rows:
        st.info("No retune jobs yet.")
        return
    st.dataframe([{k: v for k, v in row.items() if k != "log"} for row in rows], hide_index=True)
    chosen = st.selectbox("Show job", [row["id"] for row in rows], key="rt_show")
    row = next(r for r in rows if r["id"] == chosen)
    st.markdown(f"**Job #{row['id']}**: {inline(row['status'])}"
                + (f" · adapter model:{row['adapter']} · re-evaluation runs {inline(row['runs'])}"
                   if row["adapter"] else ""))
    if row["error"]:
        plain(row["error"], label="Error")
    plain(row["log"], label="Log", empty="(no log yet)")
    if row["status"] in ("queued", "running") and st.button("Cancel job", key=f"rt_cancel_{row['id']}"):
        state = app_state.transaction(lambda s: cancel_job_as(s, account, int(row["id"])))
        app_state.flash(f"Job #{row['id']}: {state}.")
        st.rerun()

