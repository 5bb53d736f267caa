"""``/v1/plans``: list the caller's tenant's plans, read one, propose a new one (a DRAFT)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from orchestrator.api.auth import Caller
from orchestrator.api.deps import (
    CallerDep,
    ContextDep,
    IdempotencyKey,
    Precondition,
    json_response,
    run_mutation,
)
from orchestrator.api.models import IDENT_PATTERN, NAME_PATTERN, NewPlan, PlanPage, PlanView
from orchestrator.api.openapi import problems
from orchestrator.api.problems import ApiProblem
from orchestrator.api.views import etag, plan_summary, plan_view
from planpolicy import PlanStep, PolicyBundle, RevenuePlanV1

__all__ = ["PlanId", "router"]

router = APIRouter(prefix="/v1", tags=["plans"])

PlanId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=IDENT_PATTERN,
        description="The plan's id (a plan of another tenant is reported as not found)",
    ),
]

STATUS_PATTERN: Final = r"^[A-Z][A-Z0-9_]{0,63}$"


@router.get(
    "/plans",
    operation_id="listPlans",
    summary="List the caller's tenant's plans",
    response_model=PlanPage,
    responses=problems(400, 401, 422),
)
def list_plans(
    context: ContextDep,
    caller: CallerDep,
    status: Annotated[
        str | None,
        Query(pattern=STATUS_PATTERN, description="Only plans in this state, e.g. `ACTIVE`"),
    ] = None,
    account_id: Annotated[
        str | None,
        Query(max_length=128, pattern=IDENT_PATTERN, description="Only this account's plans"),
    ] = None,
    plan_type: Annotated[
        str | None,
        Query(
            pattern=NAME_PATTERN,
            description="Only plans of this type (applied within each page: a page may hold "
            "fewer than `limit` plans; follow `next_cursor` until it is null)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=2048, description="`next_cursor` of the previous page"),
    ] = None,
) -> Response:
    """Plans ordered by (status, created_at, plan_id), one page at a time."""
    page = context.store.list_plans(
        caller.tenant_id, status=status, account_id=account_id, limit=limit, cursor=cursor or None
    )
    items = [
        plan_summary(context.runtime, plan)
        for plan in page.items
        if plan_type is None or plan.plan_type == plan_type
    ]
    return json_response(PlanPage(items=items, next_cursor=page.next_cursor))


@router.get(
    "/plans/{plan_id}",
    operation_id="getPlan",
    summary="Read a plan with its risk and latest gate decision",
    response_model=PlanView,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current version"},
        **problems(401, 404, 422),
    },
)
def get_plan(
    context: ContextDep,
    caller: CallerDep,
    plan_id: PlanId,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", max_length=1024, description="A previously seen ETag"),
    ] = None,
) -> Response:
    """The plan; its ``ETag`` is its version, for ``If-Match`` on the commands."""
    plan = context.store.get_plan(caller.tenant_id, plan_id)
    tag = etag(plan.version)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and (
        if_none_match.strip() == "*"
        or tag in (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    ):
        return Response(status_code=304, headers=headers)
    entries = context.store.ledger(caller.tenant_id, plan_id)
    return json_response(plan_view(context.runtime, plan, caller, entries), headers=headers)


@router.post(
    "/plans",
    operation_id="createPlan",
    summary="Propose a plan (stored as a DRAFT)",
    status_code=201,
    response_model=PlanView,
    responses=problems(401, 409, 422),
)
def create_plan(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    body: NewPlan,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new DRAFT of the caller's tenant, proposed by the caller; nothing runs until approved."""

    def command() -> Response:
        plan = _new_plan(context.runtime.bundle, context.clock.now(), caller, body)
        stored = context.service.create(plan, caller.actor, body.reason)
        entries = context.store.ledger(caller.tenant_id, stored.plan_id)
        return json_response(
            plan_view(context.runtime, stored, caller, entries),
            status=201,
            headers={"Location": f"/v1/plans/{stored.plan_id}", "ETag": etag(stored.version)},
        )

    return run_mutation(
        request, context, caller, idempotency_key, body, Precondition(None), command
    )


def _field_error(field: str, detail: str, code: str) -> dict[str, Any]:
    pointer = "#/" + field.replace(".", "/")
    return {"location": "body", "field": field, "pointer": pointer, "detail": detail, "code": code}


def _new_plan(bundle: PolicyBundle, now: datetime, caller: Caller, body: NewPlan) -> RevenuePlanV1:
    """The proposed plan, checked against the bundle's plan type (a 422 names each field)."""
    errors = []
    ptype = bundle.plan_type(body.plan_type)
    if ptype is None:
        known = ", ".join(f"`{name}`" for name in sorted(bundle.plan_types)) or "none"
        errors.append(
            _field_error(
                "plan_type",
                f"unknown plan type `{body.plan_type}` (known: {known})",
                "unknown_plan_type",
            )
        )
    else:
        if body.plan_type_version is not None and body.plan_type_version != ptype.version:
            errors.append(
                _field_error(
                    "plan_type_version",
                    f"plan type `{ptype.name}` is at version {ptype.version}, "
                    f"not {body.plan_type_version}",
                    "plan_type_version_mismatch",
                )
            )
        for index, step in enumerate(body.steps):
            if step.action_type not in ptype.steps:
                allowed = ", ".join(f"`{a}`" for a in ptype.step_order)
                errors.append(
                    _field_error(
                        f"steps.{index}.action_type",
                        f"`{step.action_type}` is not a step of `{ptype.name}` "
                        f"(allowed: {allowed})",
                        "step_type_not_allowed",
                    )
                )
    if errors or ptype is None:
        raise ApiProblem(
            "validation-error", "the proposed plan does not fit its plan type", {"errors": errors}
        )
    try:
        return RevenuePlanV1(
            tenant_id=caller.tenant_id,
            account_id=body.account_id,
            plan_type=ptype.name,
            plan_type_version=ptype.version,
            objective=body.objective,
            steps=[
                PlanStep(
                    action_type=step.action_type,
                    parameters=step.parameters,
                    human_touch=step.human_touch
                    if step.human_touch is not None
                    else ptype.steps[step.action_type].human_touch,
                )
                for step in body.steps
            ],
            owner=body.owner or caller.user_id,
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
            expires_at=body.expires_at or now + ptype.max_duration,
        )
    except ValidationError as exc:  # defensive: NewPlan's constraints mirror the record's
        raise ApiProblem(
            "validation-error",
            "the proposed plan is not a valid plan record",
            {
                "errors": [
                    _field_error(
                        ".".join(str(p) for p in err["loc"]) or "body",
                        str(err["msg"]).lower(),
                        str(err["type"]),
                    )
                    for err in exc.errors()
                ]
            },
        ) from exc
