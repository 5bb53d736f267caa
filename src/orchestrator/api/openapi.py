"""The OpenAPI document: every error response is documented as ``application/problem+json``.

Routes declare the problems they can give with :func:`problems`; the document
is then completed by :func:`complete_openapi`: the ``Problem`` schema is added,
FastAPI's own 422 schema is replaced by ours, and every operation gets a
``default`` problem response so that no status a client can see is undocumented.
"""

from __future__ import annotations

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


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Add the problem schemas and responses FastAPI does not know about."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, FieldError):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
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
            responses["default"] = {
                "description": "Any other error, as a problem document",
                "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}},
            }
    return document
