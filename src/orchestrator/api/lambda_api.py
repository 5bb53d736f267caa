"""The Plans API on AWS Lambda behind API Gateway (HTTP API v2 or REST API proxy events).

Deploy with the handler ``orchestrator.api.lambda_api.handler``. The app is the
same one ``plan-orchestrator serve`` runs, built once per container from the
environment (see :mod:`orchestrator.api.settings`) with ``PLAN_API_AUTH``
defaulting to ``gateway``: API Gateway's authorizer verifies the caller's token
and passes its claims in the event (``requestContext.authorizer.jwt.claims``
for a JWT authorizer, ``requestContext.authorizer.lambda`` for a Lambda
authorizer); the tenant and roles are read from there. Set
``PLAN_API_BASE_PATH`` when the API is mounted under a path prefix.

The app's lifespan is off: Mangum would run it on every invocation, and the
store stays open for the container's life.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import Any, Final

from mangum import Mangum

from orchestrator.api.app import create_app
from orchestrator.api.settings import ApiSettings

__all__ = ["TEXT_MIME_TYPES", "build_handler", "handler"]

TEXT_MIME_TYPES: Final = [
    "text/",
    "application/json",
    "application/problem+json",
    "application/javascript",
    "application/vnd.oai.openapi",
]
"""Responses sent as text, not base64 (everything the app serves is text)."""

_HANDLERS: dict[str, Mangum] = {}
"""The container's adapter, built on the first invocation (a cold start)."""


def _ensure_event_loop() -> None:
    """Give this thread an event loop for Mangum to run the app on (made once, kept)."""
    policy = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            policy.get_event_loop()
    except (RuntimeError, DeprecationWarning):
        asyncio.set_event_loop(asyncio.new_event_loop())


def build_handler(settings: ApiSettings | None = None) -> Mangum:
    """A Mangum adapter around the app; settings default to the environment, gateway auth."""
    _ensure_event_loop()
    if settings is None:
        settings = ApiSettings.from_env(auth=os.environ.get("PLAN_API_AUTH") or "gateway")
    return Mangum(
        create_app(settings),
        lifespan="off",
        api_gateway_base_path=os.environ.get("PLAN_API_BASE_PATH", "/"),
        text_mime_types=list(TEXT_MIME_TYPES),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one API Gateway proxy event in, one proxy response out."""
    adapter = _HANDLERS.get("app")
    if adapter is None:
        adapter = _HANDLERS.setdefault("app", build_handler())
    return adapter(event, context)
