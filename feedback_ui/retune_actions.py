"""The Retune page's writes, each checking that the acting account is an admin before it touches the store.

``retune`` is a library the command line calls as a trusted operator, so its functions take no account;
the app reaches them only through these.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from evaltune.feedback_ui.auth import Account, require_role
from evaltune.retune import jobs
from evaltune.retune.config import RetuneConfig
from evaltune.retune.datasets import build_dataset
from evaltune.retune.strategies import StrategyParams


def build_dataset_as(session: Session, actor: Account, campaign_id: int, strategy: str,
                     params: StrategyParams) -> dict[str, int]:
    """Build a preference dataset from a campaign's ratings (admins only); returns its row counts. Raises
    ``EmptyDatasetError`` saying why, storing nothing, when the ratings give no training row."""
    require_role(actor, "admin")
    return dict(build_dataset(session, campaign_id, strategy, params).counts)


def queue_job_as(session: Session, actor: Account, dataset_id: int, base_model_id: int, config: RetuneConfig,
                 eval_suites: Sequence[str] = ()) -> int:
    """Queue a LoRA retune job (admins only); returns its id. Raises ``jobs.JobError`` with the reason and the
    fix, storing nothing, for a job that cannot succeed (see ``jobs.submit``)."""
    require_role(actor, "admin")
    return jobs.submit(session, dataset_id=dataset_id, base=jobs.Base(version_id=base_model_id), config=config,
                       eval_suites=eval_suites).id


def cancel_job_as(session: Session, actor: Account, job_id: int) -> str:
    """Cancel a queued job or ask a running one to stop (admins only); returns the new state."""
    require_role(actor, "admin")
    return jobs.cancel(session, job_id)
