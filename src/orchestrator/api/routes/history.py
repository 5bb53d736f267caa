"""A plan's ledger ("why did this stop?") and a dry-run gate check; both read only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from orchestrator.api.deps import CallerDep, ContextDep, json_response
from orchestrator.api.models import GateView, LedgerView
from orchestrator.api.openapi import problems
from orchestrator.api.routes.plans import PlanId
from orchestrator.api.views import gate_view, ledger_entry_view, why_stopped

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["history"])


@router.get(
    "/plans/{plan_id}/ledger",
    operation_id="getPlanLedger",
    summary="A plan's ledger: who did what, when and why",
    response_model=LedgerView,
    responses=problems(401, 404, 422),
)
def ledger(
    context: ContextDep,
    caller: CallerDep,
    plan_id: PlanId,
    after: Annotated[
        int, Query(ge=0, le=2**31, description="Only entries with a greater `seq`")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 200,
) -> Response:
    """The append-only history, oldest first, with the entry that explains a stop."""
    plan = context.store.get_plan(caller.tenant_id, plan_id)
    entries = context.store.ledger(caller.tenant_id, plan_id)
    page = [e for e in entries if e.seq > after][:limit]
    more = bool(page) and page[-1].seq < entries[-1].seq
    stop = why_stopped(plan.status, entries)
    return json_response(
        LedgerView(
            plan_id=plan.plan_id,
            status=plan.status,
            entries=[ledger_entry_view(e) for e in page],
            next_after=page[-1].seq if more else None,
            why_stopped=ledger_entry_view(stop) if stop is not None else None,
        )
    )


@router.get(
    "/plans/{plan_id}/check",
    operation_id="checkPlan",
    summary="Dry-run the policy gate on a plan (changes nothing)",
    response_model=GateView,
    responses=problems(401, 404, 422),
)
def check(context: ContextDep, caller: CallerDep, plan_id: PlanId) -> Response:
    """What the gate would decide now: ``can_activate`` and every reason it would not."""
    decision = context.service.check(caller.tenant_id, plan_id)
    return json_response(gate_view(decision, decided_at=context.clock.now()))
