"""The Plans API and the Active Plans page as one ASGI app: :func:`create_app`.

The same app runs under uvicorn (``plan-orchestrator serve``) and on AWS
Lambda behind API Gateway (:mod:`orchestrator.api.lambda_api`). It serves:

- ``/v1/...`` — the Plans API (see ``docs/api.md``), tenant-scoped by the token;
- ``/openapi.json`` — its OpenAPI document;
- ``/ui/`` — the Active Plans page (static files, no CDN); ``/`` redirects there;
- ``/problems/<slug>`` — what each problem ``type`` means; ``/healthz``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from orchestrator.api.context import ApiContext, build_context
from orchestrator.api.openapi import complete_openapi
from orchestrator.api.problems import CATALOG, ApiProblem, problem_for, problem_response
from orchestrator.api.routes import ROUTERS
from orchestrator.api.settings import ApiSettings
from orchestrator.errors import StoreError
from planpolicy import LifecycleError, __version__

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_BODY_METHODS: Final = {"POST", "PUT", "PATCH"}
_HTTP_METHODS: Final = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def create_app(
    settings: ApiSettings,
    *,
    context: ApiContext | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    """The ASGI app. It builds (and on shutdown closes) its own context unless given one.

    ``on_shutdown`` runs, in order, when the server shuts the app down (before
    uvicorn re-raises the signal that stopped it).
    """
    owned = context is None
    context = context or build_context(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for callback in on_shutdown:
            callback()
        if owned:
            context.close()

    app = FastAPI(
        title="planpolicy Plans API",
        version=__version__,
        summary="Goal-level revenue plans: list, read, approve, activate, pause, resume, "
        "abort, and their ledgers; tenant-scoped, policy-checked, ledgered.",
        description=(
            "Every mutation is authority-checked for the caller's roles and the plan's risk, "
            "applied through the plan's lifecycle and recorded in its append-only ledger with "
            "the caller as actor. Errors are `application/problem+json` (RFC 9457); each "
            "`type` is described at `/problems/<slug>`. Send `If-Match` with a plan's ETag to "
            "act only on the version you read, and `Idempotency-Key` to make retries safe."
        ),
        docs_url=None,  # the interactive docs load from a CDN; the page must work offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    for router in ROUTERS:
        app.include_router(router)
    _add_error_handlers(app)
    _add_page(app, settings)
    app.add_middleware(_BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(_SecurityHeaders)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            bundle = context.runtime.bundle
            app.openapi_schema = complete_openapi(
                document,
                plan_types=list(bundle.plan_types),
                action_types=sorted({a for t in bundle.plan_types.values() for a in t.steps}),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _add_page(app: FastAPI, settings: ApiSettings) -> None:
    if not settings.page:
        return

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("ui/", status_code=307)

    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")


def _field(loc: tuple[Any, ...]) -> tuple[str, str, str | None]:
    """(location, dotted field, JSON pointer) of a validation error location."""
    where = str(loc[0]) if loc else "body"
    rest = [str(p) for p in loc[1:]]
    field = ".".join(rest) or f"({where})"
    pointer = (
        ("#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in rest))
        if where == "body"
        else None
    )
    return where, field, pointer


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for the request's path.

    Starlette names only the methods of the first route that matched the path.
    """
    app: FastAPI = request.app
    methods: set[str] = set()
    for template, item in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {m.upper() for m in item if m in _HTTP_METHODS}
    return sorted(methods)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


def _add_error_handlers(app: FastAPI) -> None:
    async def api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc, request.url.path)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():
            where, field, pointer = _field(tuple(error.get("loc", ())))
            errors.append(
                {
                    "location": where,
                    "field": field,
                    "pointer": pointer,
                    "detail": _lower_first(str(error.get("msg", "invalid value"))),
                    "code": str(error.get("type", "invalid")),
                }
            )
        shown = "; ".join(f"`{e['field']}`: {e['detail']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return problem_response(
            ApiProblem("validation-error", f"{shown}{more}", {"errors": errors}),
            request.url.path,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            problem = ApiProblem("not-found", f"no resource at `{request.url.path}`")
        elif exc.status_code == 405:
            allowed = _allowed_methods(request)
            problem = ApiProblem(
                "method-not-allowed",
                f"`{request.method}` is not allowed on `{request.url.path}`",
                headers={"Allow": ", ".join(allowed)},
            )
        else:
            slug = next(
                (t.slug for t in CATALOG.values() if t.status == exc.status_code), "bad-request"
            )
            problem = ApiProblem(slug, _lower_first(str(exc.detail)))
        for name, value in (exc.headers or {}).items():
            problem.headers.setdefault(name, value)
        return problem_response(problem, request.url.path)

    async def domain_error(request: Request, exc: Exception) -> Response:
        return problem_response(problem_for(exc), request.url.path)

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StoreError, domain_error)
    app.add_exception_handler(LifecycleError, domain_error)
    app.add_exception_handler(Exception, domain_error)


class _SecurityHeaders:
    """Headers every response carries: no sniffing, no framing, a strict CSP; no caching of API data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/v1/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", _CSP.encode()),
                ]
                if api:
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyGuard:
    """Refuse request bodies that are too large (413) or not JSON (415) before parsing them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = str(scope.get("path", ""))
        problem: ApiProblem | None = None
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            problem = ApiProblem(
                "payload-too-large", f"the request body exceeds {self.max_bytes} bytes"
            )
            if not length.isdigit():
                problem = ApiProblem("bad-request", "malformed `Content-Length` header")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            problem is None
            and content_type
            and not (content_type == "application/json" or content_type.endswith("+json"))
        ):
            problem = ApiProblem(
                "unsupported-media-type",
                f"request bodies must be `application/json`, not `{content_type}`",
            )
        if problem is not None:
            await problem_response(problem, path)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ApiProblem(
                        "payload-too-large", f"the request body exceeds {self.max_bytes} bytes"
                    )
            return message

        await self.app(scope, limited, send)
