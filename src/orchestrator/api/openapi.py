"""The OpenAPI document: every error response is documented as ``application/problem+json``.

Routes declare the problems they can give with :func:`problems`; the document
is then completed by :func:`complete_openapi`: the ``Problem`` schema is added,
FastAPI's own 422 schema is replaced by ours, and every operation gets a
``default`` problem response so that no status a client can see is undocumented.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from orchestrator.api.problems import CATALOG, PROBLEM_MEDIA_TYPE, FieldError, Problem

__all__ = ["complete_openapi", "problems"]

_REF: Final = {"$ref": "#/components/schemas/Problem"}


def _titles(status: int) -> str:
    titles = [t.title for t in CATALOG.values() if t.status == status]
    return "; ".join(titles) if titles else "Error"


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the given statuses as problem documents."""
    return {
        status: {
            "description": _titles(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}},
        }
        for status in statuses
    }


_PLAN_LINKS: Final = {
    "GetPlan": "getPlan",
    "GetLedger": "getPlanLedger",
    "CheckPlan": "checkPlan",
    "ApprovePlan": "approvePlan",
    "ActivatePlan": "activatePlan",
    "PausePlan": "pausePlan",
    "ResumePlan": "resumePlan",
    "AbortPlan": "abortPlan",
}
"""Links from a response that holds a plan to the operations on that plan."""


def _link_plans(operation: dict[str, Any], status: str) -> None:
    response = operation.get("responses", {}).get(status)
    if response is not None:
        response["links"] = {
            name: {
                "operationId": target,
                "parameters": {"plan_id": "$response.body#/plan_id"},
            }
            for name, target in _PLAN_LINKS.items()
        } | {
            "ApproveFirstStep": {
                "operationId": "approveStep",
                "parameters": {
                    "plan_id": "$response.body#/plan_id",
                    "step_id": "$response.body#/steps/0/step_id",
                },
            }
        }


def complete_openapi(
    document: dict[str, Any],
    *,
    plan_types: Sequence[str] = (),
    action_types: Sequence[str] = (),
) -> dict[str, Any]:
    """Add what FastAPI does not know: problem schemas and responses, the bundle's plan
    types and action types as enums, and links from a created plan to its operations."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, FieldError):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    if plan_types and "NewPlan" in schemas:
        schemas["NewPlan"]["properties"]["plan_type"]["enum"] = sorted(plan_types)
    if action_types and "NewStep" in schemas:
        schemas["NewStep"]["properties"]["action_type"]["enum"] = sorted(action_types)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = {
                    "description": _titles(422),
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}},
                }
            if operation.get("operationId") == "createPlan":
                _link_plans(operation, "201")
            responses["default"] = {
                "description": "Any other error, as a problem document",
                "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}},
            }
    return document
