"""From the engine's records to the API's views, and the caller's authority over a plan.

The views derive, they never decide: risk comes from the bundle
(``plan_risk``), authority from :func:`planpolicy.check_authority`, the gate's
latest decision from the ledger. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from orchestrator.api.auth import Caller
from orchestrator.api.models import (
    GateView,
    LedgerEntryView,
    PlanSummary,
    PlanTypeStep,
    PlanTypeView,
    PlanView,
    ReasonView,
    StepView,
)
from orchestrator.ledger import LedgerEntry, LedgerEvent
from orchestrator.policy import PolicyRuntime
from planpolicy import (
    AuthorityDecision,
    CompiledPlanType,
    Decision,
    RevenuePlanV1,
    StepStatus,
    check_authority,
)

__all__ = [
    "API_TRIGGERS",
    "activation_authority",
    "etag",
    "gate_view",
    "latest_gate",
    "ledger_entry_view",
    "plan_summary",
    "plan_type_view",
    "plan_view",
    "why_stopped",
]

API_TRIGGERS: Final = ("approve", "activate", "pause", "resume", "abort")
"""Lifecycle triggers a person fires through the API (``complete``/``expire`` are the scheduler's)."""

_STOP_EVENTS: Final = {
    "PAUSED": (LedgerEvent.PAUSED,),
    "ABORTED": (LedgerEvent.ABORTED,),
    "COMPLETED": (LedgerEvent.COMPLETED,),
    "EXPIRED": (LedgerEvent.EXPIRED,),
    "APPROVED": (LedgerEvent.ACTIVATION_REJECTED,),
}


def etag(version: int) -> str:
    """The strong ETag of a plan version."""
    return f'"{version}"'


def activation_authority(
    runtime: PolicyRuntime, plan: RevenuePlanV1, caller: Caller
) -> AuthorityDecision:
    """May the caller activate the plan now rather than wait for the scheduler?

    The default lifecycle guards ``activate`` with the gate only, and the
    service checks no authority for it. Through the API a person starts a plan,
    so the API asks the AuthorityPolicy: for ``activate`` when the policy names
    that action, otherwise for ``approve`` (whoever may approve the plan may
    start it at once). Fail closed: no grant, no activation.
    """
    rules = runtime.bundle.authority
    named = "activate" in rules.owner_may or any(g.action == "activate" for g in rules.grants)
    action = "activate" if named else "approve"
    return check_authority(runtime.bundle, plan, action, caller.actor)


def permitted_triggers(
    runtime: PolicyRuntime, plan: RevenuePlanV1, caller: Caller, allowed: Iterable[str]
) -> list[str]:
    """Of ``allowed``, the triggers whose authority guard the caller passes."""
    machine = runtime.machine(plan)
    out = []
    for trigger in allowed:
        if trigger == "activate":
            ok = activation_authority(runtime, plan, caller).allowed
        elif "authority" in machine.guards(plan.status, trigger):
            ok = check_authority(runtime.bundle, plan, trigger, caller.actor).allowed
        else:
            ok = True
        if ok:
            out.append(trigger)
    return out


def reason_views(reasons: Iterable[dict[str, Any]]) -> list[ReasonView]:
    return [ReasonView.model_validate(r) for r in reasons]


def gate_view(
    decision: Decision, *, decided_at: datetime | None = None, seq: int | None = None
) -> GateView:
    """A gate decision as the API shows it."""
    data = decision.as_dict()
    return GateView(
        can_activate=decision.can_activate,
        reasons=reason_views(data["reasons"]),
        plan_risk=decision.plan_risk,
        bundle_digest=decision.bundle_digest,
        plan_type_version=decision.plan_type_version,
        decided_at=decided_at,
        ledger_seq=seq,
    )


def latest_gate(entries: Sequence[LedgerEntry]) -> GateView | None:
    """The newest gate decision the ledger records (activation or resume), if any."""
    for entry in reversed(entries):
        evidence: Any = None
        if entry.event == LedgerEvent.GATE_DECISION:
            evidence = entry.evidence
        elif entry.event == LedgerEvent.RESUMED and isinstance(entry.evidence.get("gate"), dict):
            evidence = entry.evidence["gate"]
        if not isinstance(evidence, dict) or "can_activate" not in evidence:
            continue
        reasons = evidence.get("reasons")
        version = evidence.get("plan_type_version")
        return GateView(
            can_activate=bool(evidence.get("can_activate")),
            reasons=reason_views(r for r in reasons if isinstance(r, dict))
            if isinstance(reasons, list)
            else [],
            plan_risk=_str_or_none(evidence.get("plan_risk")),
            bundle_digest=_str_or_none(evidence.get("bundle_digest")),
            plan_type_version=version if isinstance(version, int) else None,
            decided_at=entry.time,
            ledger_seq=entry.seq,
        )
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def plan_view(
    runtime: PolicyRuntime,
    plan: RevenuePlanV1,
    caller: Caller,
    entries: Sequence[LedgerEntry] = (),
) -> PlanView:
    """The plan, its derived risk, what the lifecycle and the caller's authority allow."""
    bundle = runtime.bundle
    ptype = bundle.plan_type(plan.plan_type)
    machine = runtime.machine(plan)
    allowed = [t for t in machine.allowed_triggers(plan.status) if t in API_TRIGGERS]
    steps = []
    for step in plan.steps:
        spec = ptype.steps.get(step.action_type) if ptype is not None else None
        steps.append(
            StepView(
                step_id=step.step_id,
                action_type=step.action_type,
                status=step.status.value,
                attempts=step.attempts,
                retry_limit=spec.retry.limit if spec is not None else None,
                risk=spec.risk if spec is not None else None,
                human_touch=step.human_touch,
                human_approved_by=step.human_approved_by,
                human_approved_at=step.human_approved_at,
                due_at=step.due_at,
                last_error=step.last_error,
                skip_reason=step.skip_reason,
                completed_at=step.completed_at,
                parameters=dict(step.parameters),
            )
        )
    return PlanView(
        plan_id=plan.plan_id,
        tenant_id=plan.tenant_id,
        account_id=plan.account_id,
        plan_type=plan.plan_type,
        plan_type_version=plan.plan_type_version,
        status=plan.status,
        objective=plan.objective,
        owner=plan.owner,
        created_by=plan.created_by,
        approved_by=plan.approved_by,
        created_at=plan.created_at,
        updated_at=plan.updated_at,
        approved_at=plan.approved_at,
        activated_at=plan.activated_at,
        ended_at=plan.ended_at,
        expires_at=plan.expires_at,
        completion_reason=plan.completion_reason,
        next_due_at=plan.next_due_at,
        bundle_digest=plan.bundle_digest,
        version=plan.version,
        risk=bundle.plan_risk(plan),
        steps=steps,
        allowed_triggers=allowed,
        permitted=permitted_triggers(runtime, plan, caller, allowed),
        latest_gate=latest_gate(entries),
    )


def plan_summary(runtime: PolicyRuntime, plan: RevenuePlanV1) -> PlanSummary:
    """The plan as one row of a list."""
    return PlanSummary(
        plan_id=plan.plan_id,
        account_id=plan.account_id,
        plan_type=plan.plan_type,
        status=plan.status,
        risk=runtime.bundle.plan_risk(plan),
        owner=plan.owner,
        expires_at=plan.expires_at,
        updated_at=plan.updated_at,
        next_due_at=plan.next_due_at,
        version=plan.version,
        steps_total=len(plan.steps),
        steps_settled=sum(
            1 for s in plan.steps if s.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
        ),
    )


def ledger_entry_view(entry: LedgerEntry) -> LedgerEntryView:
    """One ledger entry as the API shows it."""
    return LedgerEntryView(
        seq=entry.seq,
        time=entry.time,
        actor=entry.actor,
        event=entry.event.value,
        reason=entry.reason,
        step_id=entry.step_id,
        attempt=entry.attempt,
        plan_version=entry.plan_version,
        bundle_digest=entry.bundle_digest,
        document_versions=dict(entry.document_versions),
        evidence=dict(entry.evidence),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


def why_stopped(status: str, entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """The entry that explains why a paused, ended or rejected plan is not running."""
    wanted = _STOP_EVENTS.get(status)
    if not wanted:
        return None
    for entry in reversed(entries):
        if entry.event in wanted:
            return entry
        if status == "APPROVED" and entry.event == LedgerEvent.ACTIVATED:
            return None
    return None


def plan_type_view(ptype: CompiledPlanType) -> PlanTypeView:
    """A plan type of the bundle, for forms and filters."""
    return PlanTypeView(
        name=ptype.name,
        version=ptype.version,
        description=ptype.description,
        lifecycle=ptype.lifecycle,
        max_duration_days=ptype.max_duration.total_seconds() / 86400,
        steps=[
            PlanTypeStep(
                action_type=name,
                description=ptype.steps[name].description,
                risk=ptype.steps[name].risk,
                human_touch=ptype.steps[name].human_touch,
                required=ptype.steps[name].required,
                after=list(ptype.steps[name].after),
                retry_limit=ptype.steps[name].retry.limit,
            )
            for name in ptype.step_order
        ],
    )
