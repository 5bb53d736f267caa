"""Ports of the orchestrator: the plan store.

:class:`PlanStore` is what the service uses; :class:`StoreAdmin` adds what
operators' tools need (whole-store scans, consistent ledger snapshots);
:class:`ManagedStore` is both, as :func:`orchestrator.stores.open_store` returns.
Adapters live in :mod:`orchestrator.adapters` (memory, sqlite, dynamodb) and all
pass one contract suite (``tests/store/test_store_contract.py``).

Rules every adapter keeps:

- Every read and write is scoped by ``tenant_id``; another tenant's plan is
  :class:`~orchestrator.errors.NotFound`, exactly like a missing one.
- Every write that changes a plan carries its ledger entries in the same
  durable operation; the store assigns ``seq`` and chains hashes.
- Ledger entries are never updated or deleted: there is no API for it.
- Time is never read from the wall clock: callers pass ``now``.
- Nothing a caller holds can change what a store keeps, neither what it passed
  in nor what it got back. Plans and steps are frozen records; a changed plan
  is a copy (:func:`planpolicy.plan.replaced`). The durable stores decode a new
  plan for every read; the memory store hands out the plan it keeps, to every
  reader, sealed (:func:`planpolicy.plan.read_only`: its step list and
  parameters refuse changes in place too).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.ledger import LedgerDraft, LedgerEntry, LedgerHead
from orchestrator.records import Fence, Page, PlanRef, StepAttempt
from planpolicy.plan import RevenuePlanV1

__all__ = ["ManagedStore", "PlanStore", "StoreAdmin"]


class PlanStore(Protocol):
    """Plans, step attempts, the activation guard, the due index, leases and the ledger."""

    def init(self) -> None:
        """Create the schema or tables if missing and apply pending migrations (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    def create_plan(self, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> RevenuePlanV1:
        """Insert a new plan (stored at version 1) with its first ledger entries.

        Raises ``AlreadyExists`` when the tenant already has a plan with this id.
        """
        ...

    def get_plan(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        """The plan; ``NotFound`` when missing or owned by another tenant."""
        ...

    def list_plans(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RevenuePlanV1]:
        """A tenant's plans ordered by (status, created_at, plan_id), one page at a time.

        ``cursor`` is the opaque ``next_cursor`` of the previous page; a cursor is
        only valid for the same tenant and filters (``InvalidCursor`` otherwise).
        """
        ...

    def update_plan(
        self,
        plan: RevenuePlanV1,
        *,
        expected_version: int,
        entries: Sequence[LedgerDraft] = (),
        fence: Fence | None = None,
        activate_guard: bool = False,
        release_guard: bool = False,
        attempts: Sequence[StepAttempt] = (),
    ) -> RevenuePlanV1:
        """Replace the plan if it is still at ``expected_version``; return it at the next version.

        In the same durable operation: append ``entries`` to the ledger, check
        ``fence`` (``FenceLost`` if stale), take the activation guard of the
        plan's (tenant, account, plan_type) (``GuardConflict`` naming the holder
        if another plan has it), release the guard if this plan holds it, and
        replace existing ``attempts`` records. A stale version raises
        ``VersionConflict`` and writes nothing. Identity fields (tenant, plan id,
        account, plan type) cannot change (``InvalidUpdate``).
        """
        ...

    def active_plan_for(self, tenant_id: str, account_id: str, plan_type: str) -> str | None:
        """The id of the plan holding the activation guard, if any."""
        ...

    def due_plans(self, now: datetime, *, limit: int = 100) -> list[PlanRef]:
        """Plans of every tenant whose ``next_due_at`` is at or before ``now``, earliest first.

        Served by an index on ``next_due_at``: the cost grows with the due plans,
        not with the stored ones. A plan without ``next_due_at`` is never due.
        """
        ...

    def acquire_lease(
        self, tenant_id: str, plan_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> Fence | None:
        """Lease the plan to ``owner`` until ``now + ttl``; None if someone else holds it.

        Succeeds when the plan has no lease, its lease expired, or ``owner``
        already holds it. Every success returns a strictly greater fence token.
        """
        ...

    def release_lease(self, fence: Fence) -> None:
        """Give the lease up; a no-op if the fence is already stale."""
        ...

    def put_attempt(self, attempt: StepAttempt, fence: Fence) -> bool:
        """Insert the attempt record if absent; False if it already exists.

        ``FenceLost`` if the fence is stale (checked first).
        """
        ...

    def get_attempt(
        self, tenant_id: str, plan_id: str, step_id: uuid.UUID, attempt: int
    ) -> StepAttempt:
        """One attempt record; ``NotFound`` if absent."""
        ...

    def update_attempt(self, attempt: StepAttempt, fence: Fence) -> StepAttempt:
        """Replace an existing attempt record, conditioned on the fence."""
        ...

    def list_attempts(self, tenant_id: str, plan_id: str) -> list[StepAttempt]:
        """All attempt records of the plan, by (step_id, attempt)."""
        ...

    def ledger(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        """The plan's ledger in seq order; ``NotFound`` if the plan does not exist."""
        ...

    def append_ledger(
        self,
        tenant_id: str,
        plan_id: str,
        entries: Sequence[LedgerDraft],
        *,
        fence: Fence | None = None,
    ) -> list[LedgerEntry]:
        """Append entries that record no plan change (e.g. ``activation_rejected``)."""
        ...


class StoreAdmin(Protocol):
    """Operator tools: whole-store scans and consistent ledger snapshots."""

    def scan_plans(self) -> Iterator[PlanRef]:
        """Every plan of every tenant (a full scan: for operators' tools only)."""
        ...

    def find_plan(self, plan_id: str) -> list[PlanRef]:
        """The plans with this id, whichever tenant owns them (a scan on DynamoDB)."""
        ...

    def ledger_snapshot(self, tenant_id: str, plan_id: str) -> tuple[LedgerHead, list[LedgerEntry]]:
        """The head the plan records and its ledger entries as stored, read together.

        Entries are returned in key order without checking them, so that
        :func:`orchestrator.ledger.verify_chain` can report tampering.
        """
        ...


class ManagedStore(PlanStore, StoreAdmin, Protocol):
    """A store with its operator tools, as ``open_store`` returns it."""
