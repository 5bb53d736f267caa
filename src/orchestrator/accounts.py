"""The AccountFacts port: what the orchestrator knows about an account right now.

The gate and the evaluator need the account and its signals. In production an
adapter reads them from the CRM and the signal pipeline; locally they come from
YAML files (``accounts/<account_id>.yaml``); simulations script them over time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = ["AccountFacts", "AccountSnapshot", "DirectoryAccounts", "StaticAccounts"]

AccountSnapshot = tuple[Mapping[str, Any], Mapping[str, Any]]
"""(account, signals) as plain mappings."""


class AccountFacts(Protocol):
    """Account and signals of ``(tenant_id, account_id)`` at ``now``."""

    def snapshot(self, tenant_id: str, account_id: str, now: datetime) -> AccountSnapshot: ...


class StaticAccounts:
    """Fixed facts per (tenant, account); unknown accounts have empty facts (rules fail closed)."""

    def __init__(self, facts: Mapping[tuple[str, str], AccountSnapshot] | None = None) -> None:
        self._facts: dict[tuple[str, str], AccountSnapshot] = dict(facts or {})

    def set(
        self,
        tenant_id: str,
        account_id: str,
        account: Mapping[str, Any],
        signals: Mapping[str, Any],
    ) -> None:
        self._facts[(tenant_id, account_id)] = (account, signals)

    def snapshot(self, tenant_id: str, account_id: str, now: datetime) -> AccountSnapshot:
        """The facts set for the account, or empty ones."""
        return self._facts.get((tenant_id, account_id), ({"account_id": account_id}, {}))


class DirectoryAccounts:
    """Reads ``account:`` and ``signals:`` mappings from YAML files in a directory.

    ``<dir>/<tenant_id>/<account_id>.yaml`` is preferred (tenants kept apart),
    then ``<dir>/<account_id>.yaml``. A missing or unreadable file gives empty
    facts, so every rule that needs them fails closed. Ids cannot contain a
    path separator (the plan model forbids ``/``), so a file outside the
    directory is never read.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def snapshot(self, tenant_id: str, account_id: str, now: datetime) -> AccountSnapshot:
        """The account's facts as the files hold them now."""
        path = self.directory / tenant_id / f"{account_id}.yaml"
        if not path.is_file():
            path = self.directory / f"{account_id}.yaml"
        if not path.is_file():
            return ({"account_id": account_id}, {})
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return ({"account_id": account_id}, {})
        account = raw.get("account") if isinstance(raw, dict) else None
        signals = raw.get("signals") if isinstance(raw, dict) else None
        return (
            account if isinstance(account, dict) else {"account_id": account_id},
            signals if isinstance(signals, dict) else {},
        )
