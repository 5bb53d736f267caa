"""Who am I, which plan types exist, is the API up, and what each problem type means."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from starlette.responses import Response

from orchestrator.api.deps import CallerDep, ContextDep, json_response
from orchestrator.api.models import Health, Me, PlanTypeView
from orchestrator.api.openapi import problems
from orchestrator.api.problems import CATALOG, ApiProblem
from orchestrator.api.views import plan_type_view

__all__ = ["ProblemTypeView", "router"]

router = APIRouter(tags=["meta"])


class ProblemTypeView(BaseModel):
    """What a problem ``type`` means."""

    type: str
    title: str
    status: int
    description: str
    retryable: bool


@router.get(
    "/v1/me",
    operation_id="getMe",
    summary="The authenticated caller",
    response_model=Me,
    responses=problems(401),
)
def me(caller: CallerDep) -> Response:
    """The tenant, user and roles the caller's token carries."""
    return json_response(
        Me(
            tenant_id=caller.tenant_id,
            user_id=caller.user_id,
            roles=sorted(caller.roles),
            human=caller.human,
        )
    )


@router.get(
    "/v1/plan-types",
    operation_id="listPlanTypes",
    summary="The plan types of the loaded policy bundle",
    response_model=list[PlanTypeView],
    responses=problems(401),
)
def plan_types(context: ContextDep, caller: CallerDep) -> Response:
    """Every plan type with its steps, risks and limits (for forms and filters)."""
    bundle = context.runtime.bundle
    return json_response(
        [
            plan_type_view(bundle.plan_types[name]).model_dump(mode="json")
            for name in sorted(bundle.plan_types)
        ]
    )


@router.get(
    "/healthz",
    operation_id="health",
    summary="Liveness and the policy bundle digest",
    response_model=Health,
)
def health(context: ContextDep) -> Response:
    """Always 200 while the process serves; no authentication."""
    return json_response(Health(status="ok", bundle_digest=context.runtime.bundle.digest))


@router.get(
    "/problems/{slug}",
    operation_id="describeProblem",
    summary="What a problem type means",
    response_model=ProblemTypeView,
    responses=problems(404, 422),
)
def describe_problem(
    slug: Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z-]*$")],
) -> Response:
    """The documentation a problem document's ``type`` URI points to."""
    kind = CATALOG.get(slug)
    if kind is None:
        raise ApiProblem("not-found", f"no problem type `{slug}`")
    return json_response(
        ProblemTypeView(
            type=kind.uri,
            title=kind.title,
            status=kind.status,
            description=kind.description,
            retryable=kind.retryable,
        )
    )
