"""The app's pages, each a ``render(account)`` function, and which roles may open each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.screens import (
    adjudicate,
    agreement,
    campaigns,
    compare,
    login,
    progress,
    rate,
    retune,
    runs,
    sweeps,
    users,
)


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    roles: tuple[str, ...]  # admin may open every page
    render: Callable[[Account], None]

    def allows(self, account: Account) -> bool:
        return account.role == "admin" or account.role in self.roles


PAGES = [
    Page("rate", "Rate", ("annotator",), rate.render),
    Page("progress", "Progress", ("viewer",), progress.render),
    Page("agreement", "Agreement", ("viewer",), agreement.render),
    Page("runs", "Runs", ("viewer",), runs.render),
    Page("compare", "Compare", ("viewer",), compare.render),
    Page("sweeps", "Sweeps", ("viewer",), sweeps.render),
    Page("adjudicate", "Adjudicate", ("admin",), adjudicate.render),
    Page("campaigns", "Campaigns", ("admin",), campaigns.render),
    Page("retune", "Retune", ("admin",), retune.render),
    Page("users", "Users", ("admin",), users.render),
]

__all__ = ["PAGES", "Page", "login"]
