"""Retune (admins): build a dataset from a campaign's ratings, queue a LoRA job, follow its status and log.

A worker (``evaltune worker``) runs the queued jobs; this page only writes to and reads from the store.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import ModelVersion
from evaltune.db.training import PreferenceDataset
from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns
from evaltune.feedback_ui.retune_actions import build_dataset_as, cancel_job_as, queue_job_as
from evaltune.feedback_ui.safe_text import inline, plain
from evaltune.retune import jobs
from evaltune.retune.config import RetuneConfig
from evaltune.retune.datasets import dataset_method
from evaltune.retune.strategies import STRATEGIES, StrategyParams


def render(account: Account) -> None:
    st.header("Retune")
    _build(account)
    _enqueue(account)
    _jobs(account)


def _build(account: Account) -> None:
    campaigns = {c.id: f"#{c.id} {c.name}" for c in app_state.read(lambda s: list_campaigns(s))}
    with st.form("build_dataset"):
        st.subheader("1. Dataset from ratings")
        campaign_id = st.selectbox("Campaign", list(campaigns), format_func=campaigns.__getitem__, key="rt_campaign")
        strategy = st.selectbox("Strategy", STRATEGIES, key="rt_strategy")
        cols = st.columns(3)
        min_gap = cols[0].number_input("Min Likert gap", min_value=1.0, max_value=4.0, value=2.0, key="rt_gap")
        agreement = cols[1].number_input("Min agreement", min_value=0.0, max_value=1.0, value=0.0, key="rt_agree")
        holdout = cols[2].number_input("Held-out share", min_value=0.0, max_value=0.9, value=0.1, key="rt_holdout")
        built = st.form_submit_button("Build dataset", type="primary")
    campaign = campaign_id if campaign_id in campaigns else next(iter(campaigns), None)
    if not built or campaign is None:
        return
    params = StrategyParams(min_gap=float(min_gap), min_agreement=float(agreement), holdout=float(holdout))
    counts = app_state.transaction(lambda s: build_dataset_as(s, account, int(campaign), str(strategy), params))
    app_state.flash(f"Dataset built: {counts.get('train', 0)} train rows, {counts.get('holdout', 0)} held out.")
    st.rerun()


def _choices(session: Session) -> tuple[dict[int, str], dict[int, str]]:
    datasets = {d.id: f"#{d.id} {d.name} ({d.strategy}, {d.counts.get('train', 0)} rows) -> {dataset_method(d)}"
                for d in session.scalars(select(PreferenceDataset).order_by(PreferenceDataset.id.desc()))}
    models = {m.id: f"model:{m.id} {m.name}" for m in session.scalars(
        select(ModelVersion).where(ModelVersion.adapter_path.is_(None)).order_by(ModelVersion.id.desc()))}
    return datasets, models


def _enqueue(account: Account) -> None:
    datasets, models = app_state.read(_choices)
    with st.form("enqueue_job"):
        st.subheader("2. Queue a LoRA retune")
        dataset_id = st.selectbox("Dataset", list(datasets), format_func=datasets.__getitem__, key="rt_dataset")
        base_id = st.selectbox("Base model", list(models), format_func=models.__getitem__, key="rt_base")
        cols = st.columns(3)
        method = cols[0].selectbox("Method", ["dpo", "kto", "sft"], key="rt_method")
        epochs = cols[1].number_input("Epochs", min_value=0.5, max_value=20.0, value=3.0, key="rt_epochs")
        lr = cols[2].number_input("Learning rate", min_value=1e-6, max_value=1e-2, value=5e-4, format="%.6f",
                                  key="rt_lr")
        suites = st.text_input("Re-run these suites afterwards (comma-separated)", value="smoke", key="rt_suites")
        queued = st.form_submit_button("Queue job", type="primary")
    # A keyed selectbox drawn while it had no options keeps None after options appear: fall back to the first.
    dataset = dataset_id if dataset_id in datasets else next(iter(datasets), None)
    base = base_id if base_id in models else next(iter(models), None)
    if not queued or dataset is None or base is None:
        if queued:
            st.error("Build a dataset and run a base model first: there is nothing to retune yet.")
        return
    try:
        config = RetuneConfig(method=str(method), epochs=float(epochs), learning_rate=float(lr))
    except ValueError as error:
        st.error(inline(error))
        return
    names = [name.strip() for name in suites.split(",") if name.strip()]
    job_id = app_state.transaction(lambda s: queue_job_as(s, account, int(dataset), int(base), config, names))
    app_state.flash(f"Queued job #{job_id}; start a worker with `evaltune worker` if none is running.")
    st.rerun()


def _job_rows(session: Session) -> list[dict[str, Any]]:
    return [{"id": j.id, "status": j.status, "method": j.method, "dataset": j.dataset_id, "base": j.base_model_id,
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

