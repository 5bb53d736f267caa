"""The plan commands: approve, activate, pause, resume, abort, approve a human-touch step.

Each is authority-checked for the caller's role and the plan's risk, applied
through the lifecycle machine and ledgered with the caller as actor in the same
store write, by :class:`orchestrator.service.PlanService`. The API adds the
HTTP contract: ``If-Match`` (412 when the plan moved on), ``Idempotency-Key``
(a retry returns the first result) and problem documents for every refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from orchestrator.api.auth import Caller
from orchestrator.api.context import ApiContext
from orchestrator.api.deps import (
    CallerDep,
    ContextDep,
    IdempotencyKey,
    Precondition,
    json_response,
    precondition,
    run_mutation,
)
from orchestrator.api.models import OptionalReason, PlanView, RequiredReason
from orchestrator.api.openapi import problems
from orchestrator.api.problems import ApiProblem, reasons_json
from orchestrator.api.routes.plans import PlanId
from orchestrator.api.views import activation_authority, etag, plan_view
from planpolicy import GuardDenied, RevenuePlanV1

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["commands"])

PreconditionDep = Annotated[Precondition, Depends(precondition)]
StepId = Annotated[uuid.UUID, Path(description="The step's stable id")]

_COMMAND_PROBLEMS = problems(401, 403, 404, 409, 412, 422)


def _plan_response(context: ApiContext, caller: Caller, plan: RevenuePlanV1) -> Response:
    entries = context.store.ledger(caller.tenant_id, plan.plan_id)
    return json_response(
        plan_view(context.runtime, plan, caller, entries), headers={"ETag": etag(plan.version)}
    )


def _current(context: ApiContext, caller: Caller, plan_id: str) -> Callable[[], int]:
    return lambda: context.store.get_plan(caller.tenant_id, plan_id).version


@router.post(
    "/plans/{plan_id}/approve",
    operation_id="approvePlan",
    summary="Approve a DRAFT (DRAFT -> APPROVED)",
    response_model=PlanView,
    responses=_COMMAND_PROBLEMS,
)
def approve(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    plan_id: PlanId,
    body: OptionalReason,
    pre: PreconditionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A person the AuthorityPolicy allows approves the plan; it activates when the gate allows."""

    def command() -> Response:
        plan = context.service.approve(
            caller.tenant_id,
            plan_id,
            caller.actor,
            body.reason,
            expected_version=pre.expected(_current(context, caller, plan_id)),
        )
        return _plan_response(context, caller, plan)

    return run_mutation(request, context, caller, idempotency_key, body, pre, command)


@router.post(
    "/plans/{plan_id}/activate",
    operation_id="activatePlan",
    summary="Activate an APPROVED plan now (APPROVED -> ACTIVE, if the gate allows)",
    response_model=PlanView,
    responses=_COMMAND_PROBLEMS,
)
def activate(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    plan_id: PlanId,
    body: OptionalReason,
    pre: PreconditionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Ask the gate now instead of waiting for the scheduler; a refusal is a 409 and is ledgered."""

    def command() -> Response:
        plan = context.store.get_plan(caller.tenant_id, plan_id)
        expected = pre.expected(lambda: plan.version)
        if expected is not None and expected != plan.version:
            raise ApiProblem(
                "precondition-failed",
                f"the plan is at version {plan.version}, not {expected} as `If-Match` requires",
                {"current_version": plan.version},
            )
        context.runtime.machine(plan).guards(plan.status, "activate")  # invalid -> 409 first
        authority = activation_authority(context.runtime, plan, caller)
        if not authority.allowed:
            raise GuardDenied("activate", "authority", authority.reasons)
        result = context.service.activate(
            caller.tenant_id, plan_id, caller.actor, body.reason, expected_version=plan.version
        )
        if not result.activated:
            raise ApiProblem(
                "gate-denied",
                "the plan was not activated: "
                + "; ".join(r.message for r in result.reasons or result.decision.reasons),
                {
                    "trigger": "activate",
                    "reasons": reasons_json(result.reasons or result.decision.reasons),
                    "current_version": result.plan.version,
                },
            )
        return _plan_response(context, caller, result.plan)

    return run_mutation(request, context, caller, idempotency_key, body, pre, command)


def _transition(trigger: str) -> Callable[..., Response]:
    """The route of a reason-required transition (pause, resume, abort)."""

    def route(
        request: Request,
        context: ContextDep,
        caller: CallerDep,
        plan_id: PlanId,
        body: RequiredReason,
        pre: PreconditionDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        def command() -> Response:
            method = getattr(context.service, trigger)
            plan: RevenuePlanV1 = method(
                caller.tenant_id,
                plan_id,
                caller.actor,
                body.reason,
                expected_version=pre.expected(_current(context, caller, plan_id)),
            )
            return _plan_response(context, caller, plan)

        return run_mutation(request, context, caller, idempotency_key, body, pre, command)

    route.__name__ = trigger
    return route


_TRANSITIONS = {
    "pause": (
        "pausePlan",
        "Pause an ACTIVE plan (ACTIVE -> PAUSED)",
        "Nothing is dispatched while PAUSED; outcomes of steps in flight are still "
        "recorded and expiry still applies. A reason is required.",
    ),
    "resume": (
        "resumePlan",
        "Resume a PAUSED plan (PAUSED -> ACTIVE, if the gate allows)",
        "Authority-checked, and the gate must allow the plan again. A reason is required.",
    ),
    "abort": (
        "abortPlan",
        "Abort a plan (any non-terminal state -> ABORTED)",
        "Ends the plan for good and releases its activation guard. A reason is required.",
    ),
}

for _trigger, (_operation, _summary, _description) in _TRANSITIONS.items():
    router.add_api_route(
        f"/plans/{{plan_id}}/{_trigger}",
        _transition(_trigger),
        methods=["POST"],
        operation_id=_operation,
        summary=_summary,
        description=_description,
        response_model=PlanView,
        responses=_COMMAND_PROBLEMS,
    )


@router.post(
    "/plans/{plan_id}/steps/{step_id}/approve",
    operation_id="approveStep",
    summary="Approve a human-touch step so that it may be dispatched",
    response_model=PlanView,
    responses=_COMMAND_PROBLEMS,
)
def approve_step(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    plan_id: PlanId,
    step_id: StepId,
    body: OptionalReason,
    pre: PreconditionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A person with the ``approve_step`` grant approves one step of a non-terminal plan."""

    def command() -> Response:
        plan = context.service.approve_step(
            caller.tenant_id,
            plan_id,
            step_id,
            caller.actor,
            body.reason,
            expected_version=pre.expected(_current(context, caller, plan_id)),
        )
        return _plan_response(context, caller, plan)

    return run_mutation(request, context, caller, idempotency_key, body, pre, command)
