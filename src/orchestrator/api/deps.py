"""Request plumbing shared by the routes: the context, the caller, preconditions, idempotency.

Every mutation goes through :func:`run_mutation`: it resolves ``If-Match`` to
the expected plan version, reserves the ``Idempotency-Key`` (replaying a stored
result when the request was already answered), runs the command, turns a
domain error into its problem response, and stores the result for retries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import JSONResponse, Response

from orchestrator.api.auth import Caller, Unauthenticated
from orchestrator.api.context import ApiContext
from orchestrator.api.idempotency import (
    KEY_PATTERN,
    REPLAYED_HEADERS,
    BeginOutcome,
    StoredResponse,
    fingerprint,
)
from orchestrator.api.problems import ApiProblem, problem_for, problem_response

__all__ = [
    "CallerDep",
    "ContextDep",
    "IdempotencyKey",
    "IfMatch",
    "Precondition",
    "json_response",
    "precondition",
    "run_mutation",
]

_ETAG: Final = re.compile(r'\s*(W/)?"([^"]*)"\s*')

_bearer = HTTPBearer(
    auto_error=False,
    description="An HS256 JWT with `sub`, `tenant_id`, `roles` and `exp` "
    "(on AWS, API Gateway's authorizer verifies it instead)",
)


def get_context(request: Request) -> ApiContext:
    """The process-wide :class:`ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_caller(
    request: Request,
    context: ContextDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The authenticated caller, or a 401 ``unauthenticated`` problem."""
    try:
        caller = context.authenticator.authenticate(request.headers, request.scope)
    except Unauthenticated as exc:
        raise ApiProblem("unauthenticated", exc.detail) from exc
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1024,
        description='Act only if the plan is still at this version (its ETag, e.g. `"3"`)',
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="Unique per intended operation; a retry with the same key returns "
        "the first result (kept 24 hours)",
    ),
]


class Precondition:
    """``If-Match``, resolved: ``expected`` is the version to require, if any."""

    def __init__(self, header: str | None) -> None:
        self.sent = header is not None
        self.any = header is not None and header.strip() == "*"
        self.versions: frozenset[int] = frozenset()
        if header is not None and not self.any:
            versions = set()
            for tag in header.split(","):
                match = _ETAG.fullmatch(tag)
                # Weak tags never match under If-Match's strong comparison (RFC 9110).
                if match and not match.group(1) and match.group(2).isdigit():
                    versions.add(int(match.group(2)))
            self.versions = frozenset(versions)

    def expected(self, current: Callable[[], int]) -> int | None:
        """The version to pass to the service; ``precondition-failed`` if none can match."""
        if not self.sent or self.any:
            return None
        if len(self.versions) == 1:
            return next(iter(self.versions))
        version = current()
        if version not in self.versions:
            raise ApiProblem(
                "precondition-failed",
                f"the plan is at version {version}, which `If-Match` does not name",
                {"current_version": version},
            )
        return version


def precondition(if_match: IfMatch = None) -> Precondition:
    """Dependency: the parsed ``If-Match`` header."""
    return Precondition(if_match)


def json_response(
    model: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A pydantic model (or plain data) as a JSON response."""
    content = model.model_dump(mode="json") if hasattr(model, "model_dump") else model
    return JSONResponse(content, status_code=status, headers=headers)


def run_mutation(
    request: Request,
    context: ApiContext,
    caller: Caller,
    key: str | None,
    body: Any,
    pre: Precondition,
    command: Callable[[], Response],
) -> Response:
    """Run ``command`` once per Idempotency-Key; domain errors become problem responses."""
    instance = request.url.path
    if key is None:
        return _execute(command, pre, instance)
    digest = fingerprint(
        request.method,
        instance,
        caller.user_id,
        sorted(caller.roles),
        request.headers.get("if-match"),
        body.model_dump(mode="json") if hasattr(body, "model_dump") else body,
    )
    store = context.idempotency
    begun = store.begin(caller.tenant_id, key, digest, context.clock.now())
    if begun.outcome is BeginOutcome.REPLAY and begun.response is not None:
        stored = begun.response
        headers = {**stored.headers, "Idempotent-Replayed": "true"}
        content_type = headers.pop("content-type", "application/json")
        return Response(stored.body, stored.status, headers=headers, media_type=content_type)
    if begun.outcome is BeginOutcome.MISMATCH:
        return problem_response(
            ApiProblem(
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request: use a new key",
            ),
            instance,
        )
    if begun.outcome is BeginOutcome.IN_PROGRESS:
        return problem_response(
            ApiProblem(
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still running: retry shortly",
                headers={"Retry-After": "1"},
            ),
            instance,
        )
    try:
        response = _execute(command, pre, instance)
    except BaseException:
        store.release(caller.tenant_id, key, digest)
        raise
    if response.status_code >= 500:
        store.release(caller.tenant_id, key, digest)
        return response
    headers = {
        name: value for name, value in response.headers.items() if name.lower() in REPLAYED_HEADERS
    }
    store.finish(
        caller.tenant_id,
        key,
        digest,
        StoredResponse(response.status_code, bytes(response.body), headers),
        context.clock.now(),
    )
    return response


def _execute(command: Callable[[], Response], pre: Precondition, instance: str) -> Response:
    try:
        return command()
    except Exception as exc:
        return problem_response(problem_for(exc, if_match_sent=pre.sent and not pre.any), instance)
