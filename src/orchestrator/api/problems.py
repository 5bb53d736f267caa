"""Errors as ``application/problem+json`` (RFC 9457), one stable type per error.

Every refusal the API gives is a :class:`ProblemType` of :data:`CATALOG`: its
``type`` URI (``/problems/<slug>``, served as a short description), title and
HTTP status never change; ``detail`` says what happened this time, and
extension members carry the machine-readable rest (the lifecycle state and
trigger of an invalid transition, the gate's reasons, field-level validation
errors, whether retrying can help).

Domain errors are mapped here, at the boundary, by :func:`problem_for`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from orchestrator.errors import (
    AlreadyExists,
    FenceLost,
    GuardConflict,
    InvalidCursor,
    NotFound,
    StoreError,
    StoreNotInitialized,
    StoreUnavailable,
    VersionConflict,
)
from planpolicy import GuardDenied, InvalidTransition, Reason

__all__ = [
    "CATALOG",
    "PROBLEM_MEDIA_TYPE",
    "ApiProblem",
    "FieldError",
    "Problem",
    "ProblemType",
    "problem_for",
    "problem_response",
]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """One kind of error: its slug (the end of its type URI), title, status and meaning."""

    slug: str
    title: str
    status: int
    description: str
    retryable: bool = False

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


_TYPES: Final = (
    ProblemType(
        "unauthenticated",
        "Authentication required",
        401,
        "The request has no valid token: it is missing, malformed, expired or wrongly signed.",
    ),
    ProblemType(
        "authority-denied",
        "Not allowed by the authority policy",
        403,
        "The caller's roles may not perform this action on a plan of this risk "
        "(or the caller proposed the plan and may not approve it); `reasons` say which rule.",
    ),
    ProblemType(
        "not-found",
        "Not found",
        404,
        "No such plan, step or resource for the caller's tenant. A plan of another tenant "
        "is reported exactly like a missing one.",
    ),
    ProblemType(
        "method-not-allowed",
        "Method not allowed",
        405,
        "The resource exists but does not support this HTTP method.",
    ),
    ProblemType(
        "not-acceptable",
        "Not acceptable",
        406,
        "The API answers with JSON only.",
    ),
    ProblemType(
        "invalid-transition",
        "Invalid lifecycle transition",
        409,
        "The plan's lifecycle does not allow this trigger from its current state; "
        "`state`, `trigger` and `allowed_triggers` say which.",
    ),
    ProblemType(
        "gate-denied",
        "Refused by the policy gate",
        409,
        "The policy gate does not allow the plan to become ACTIVE; `reasons` list every "
        "failed rule. The decision is recorded in the plan's ledger.",
    ),
    ProblemType(
        "version-conflict",
        "The plan changed meanwhile",
        409,
        "Another write changed the plan between reading and writing it. Re-read it "
        "(GET the plan) and decide again.",
        retryable=True,
    ),
    ProblemType(
        "already-exists",
        "Already exists",
        409,
        "A plan with this id already exists for the tenant.",
    ),
    ProblemType(
        "idempotency-key-in-use",
        "A request with this Idempotency-Key is still running",
        409,
        "The first request with this key has not finished; retry after a moment to get its result.",
        retryable=True,
    ),
    ProblemType(
        "precondition-failed",
        "Precondition failed",
        412,
        "`If-Match` names a version the plan is no longer at; `current_version` is the "
        "version now (re-read the plan and decide again).",
    ),
    ProblemType(
        "payload-too-large",
        "Request body too large",
        413,
        "The request body exceeds the API's limit.",
    ),
    ProblemType(
        "unsupported-media-type",
        "Unsupported media type",
        415,
        "Request bodies must be `application/json`.",
    ),
    ProblemType(
        "validation-error",
        "The request is not valid",
        422,
        "A path, query, header or body value is missing or malformed; `errors` lists "
        "each problem with its location and field.",
    ),
    ProblemType(
        "idempotency-key-reused",
        "Idempotency-Key reused for another request",
        422,
        "This Idempotency-Key was first used for a different request (another path, "
        "body or caller). Use a new key for a new request.",
    ),
    ProblemType(
        "invalid-cursor",
        "Invalid pagination cursor",
        400,
        "The cursor is malformed or belongs to another query (tenant or filters); start "
        "again without it.",
    ),
    ProblemType(
        "bad-request",
        "Bad request",
        400,
        "The request could not be understood.",
    ),
    ProblemType(
        "store-unavailable",
        "The plan store is unavailable",
        503,
        "The backend is busy, throttled or unreachable; retry with backoff.",
        retryable=True,
    ),
    ProblemType(
        "internal-error",
        "Internal error",
        500,
        "An unexpected error; it has been logged. The request may be retried.",
        retryable=True,
    ),
)

CATALOG: Final[Mapping[str, ProblemType]] = {t.slug: t for t in _TYPES}
"""Every problem type by slug."""


class FieldError(BaseModel):
    """One field-level validation problem."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="`body`, `query`, `path` or `header`")
    field: str = Field(description="Dotted path of the field, e.g. `steps.0.action_type`")
    pointer: str | None = Field(
        default=None, description="JSON Pointer into the request body (body errors only)"
    )
    detail: str = Field(description="What is wrong, in words")
    code: str = Field(description="A stable code of the check that failed")


class Problem(BaseModel):
    """An RFC 9457 problem document; extension members depend on the type."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI reference identifying the problem type")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(ge=100, le=599, description="The HTTP status code")
    detail: str | None = Field(default=None, description="What happened this time")
    instance: str | None = Field(default=None, description="The request path")
    retryable: bool = Field(description="Whether repeating the request may succeed")
    errors: list[FieldError] | None = Field(
        default=None, description="Field-level problems (validation-error only)"
    )
    reasons: list[dict[str, Any]] | None = Field(
        default=None, description="Policy reasons (authority-denied and gate-denied)"
    )
    state: str | None = Field(default=None, description="The plan's state (invalid-transition)")
    trigger: str | None = Field(default=None, description="The refused trigger")
    allowed_triggers: list[str] | None = Field(
        default=None, description="Triggers the plan's state allows (invalid-transition)"
    )
    current_version: int | None = Field(
        default=None, description="The plan's version now (precondition-failed, version-conflict)"
    )


@dataclass
class ApiProblem(Exception):
    """An error response to give: a catalog slug, a detail and extension members."""

    slug: str
    detail: str
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if self.slug not in CATALOG:
            raise ValueError(f"unknown problem type `{self.slug}`")

    @property
    def kind(self) -> ProblemType:
        return CATALOG[self.slug]

    @property
    def status(self) -> int:
        return self.kind.status

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document as JSON-ready data."""
        kind = self.kind
        document: dict[str, Any] = {
            "type": kind.uri,
            "title": kind.title,
            "status": kind.status,
            "detail": self.detail,
            "retryable": kind.retryable,
        }
        if instance is not None:
            document["instance"] = instance
        document.update(self.extensions)
        return document


def problem_response(problem: ApiProblem, instance: str | None = None) -> JSONResponse:
    """The problem as a response with the ``application/problem+json`` media type."""
    headers = {"Cache-Control": "no-store", **problem.headers}
    if problem.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="plans"')
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def reasons_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    """Policy reasons as the API shows them."""
    return [r.as_dict() for r in reasons]


def problem_for(exc: BaseException, *, if_match_sent: bool = False) -> ApiProblem:
    """The problem a domain exception stands for (``internal-error`` for anything unknown)."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, InvalidTransition):
        return ApiProblem(
            "invalid-transition",
            str(exc),
            {"state": exc.state, "trigger": exc.trigger, "allowed_triggers": list(exc.allowed)},
        )
    if isinstance(exc, GuardDenied):
        slug = "authority-denied" if exc.guard == "authority" else "gate-denied"
        return ApiProblem(
            slug, str(exc), {"trigger": exc.trigger, "reasons": reasons_json(exc.reasons)}
        )
    if isinstance(exc, NotFound):
        what = "step" if exc.message.startswith("step ") else "plan"
        return ApiProblem("not-found", f"{what} `{exc.plan_id}` not found")
    if isinstance(exc, VersionConflict):
        extensions: dict[str, Any] = {}
        if exc.actual is not None:
            extensions["current_version"] = exc.actual
        if if_match_sent:
            return ApiProblem(
                "precondition-failed",
                f"the plan is at version {exc.actual if exc.actual is not None else 'unknown'}, "
                f"not {exc.expected} as `If-Match` requires",
                extensions,
            )
        return ApiProblem("version-conflict", exc.message, extensions)
    if isinstance(exc, FenceLost):
        return ApiProblem("version-conflict", "another worker is changing the plan: re-read it")
    if isinstance(exc, GuardConflict):
        return ApiProblem("gate-denied", exc.message, {"reasons": []})
    if isinstance(exc, AlreadyExists):
        return ApiProblem("already-exists", exc.message)
    if isinstance(exc, InvalidCursor):
        return ApiProblem("invalid-cursor", exc.message)
    if isinstance(exc, StoreUnavailable | StoreNotInitialized):
        return ApiProblem("store-unavailable", exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, StoreError):
        log.error("plan store error: %s", exc.message)
        return ApiProblem("internal-error", "the plan store failed; the error has been logged")
    log.exception("unexpected error", exc_info=exc)
    return ApiProblem("internal-error", "an unexpected error occurred; it has been logged")
