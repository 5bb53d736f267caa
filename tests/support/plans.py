"""Plans and ledger drafts for store tests, built from a few arguments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from orchestrator.ledger import LedgerDraft, LedgerEvent
from planpolicy.plan import PlanStatus, PlanStep, RevenuePlanV1

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_plan(
    tenant_id: str = "acme",
    account_id: str = "acct-1",
    *,
    plan_type: str = "RENEWAL_DEFENSE",
    status: PlanStatus | str = PlanStatus.DRAFT,
    plan_id: str | None = None,
    created_at: datetime = T0,
    next_due_at: datetime | None = None,
    steps: int = 2,
) -> RevenuePlanV1:
    """A valid plan; each call gets a fresh plan id unless one is given."""
    return RevenuePlanV1(
        plan_id=plan_id or str(uuid.uuid4()),
        tenant_id=tenant_id,
        account_id=account_id,
        plan_type=plan_type,
        plan_type_version=3,
        status=str(status),
        objective="keep the renewal",
        steps=[PlanStep(action_type=f"STEP_{i}") for i in range(steps)],
        owner="owner-1",
        created_by="proposer-1",
        created_at=created_at,
        updated_at=created_at,
        expires_at=created_at + timedelta(days=90),
        next_due_at=next_due_at,
    )


def draft(
    event: LedgerEvent = LedgerEvent.NOTE,
    *,
    reason: str = "",
    actor: str = "tester",
    at: datetime = T0,
    **extra: object,
) -> LedgerDraft:
    """A ledger draft with sensible defaults."""
    return LedgerDraft.model_validate(
        {"time": at, "actor": actor, "event": event, "reason": reason, **extra}
    )


def created(plan: RevenuePlanV1) -> list[LedgerDraft]:
    """The ledger entries a new plan is stored with."""
    return [
        draft(
            LedgerEvent.CREATED,
            reason="proposed to defend the renewal",
            actor=plan.created_by,
            bundle_digest="sha256:" + "ab" * 32,
            document_versions={"PlanType/RENEWAL_DEFENSE": 3, "Lifecycle/default": 1},
            evidence={"signals": {"open_p1_tickets": 2}, "arr": 120000.5},
        )
    ]
