"""The same app on AWS Lambda: API Gateway HTTP API (v2) proxy events through Mangum.

The event template (tests/api/data/http_api_v2_event.json) has the shape API
Gateway sends, with a JWT authorizer's claims (every claim a string, lists
flattened to ``"[a b]"``). The tenant and roles come from those claims only.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from mangum import Mangum
from tests.api.harness import ALL_STEPS, REPO, write_accounts

from orchestrator.api import lambda_api
from orchestrator.api.settings import ApiSettings
from orchestrator.stores import open_store

TEMPLATE = json.loads((Path(__file__).parent / "data" / "http_api_v2_event.json").read_text())


class _Context:
    """The parts of a Lambda context object that adapters read."""

    function_name = "plans-api"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    memory_limit_in_mb = 512


def event(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    claims: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP API v2 proxy event for one request."""
    result = copy.deepcopy(TEMPLATE)
    result["rawPath"] = path
    result["requestContext"]["http"]["method"] = method
    result["requestContext"]["http"]["path"] = path
    if query:
        result["rawQueryString"] = urlencode(query)
        result["queryStringParameters"] = dict(query)
    if claims is not None:
        result["requestContext"]["authorizer"]["jwt"]["claims"] = dict(claims)
    if authorizer is not None:
        result["requestContext"]["authorizer"] = dict(authorizer)
    result["headers"].update(headers or {})
    if body is not None:
        raw = json.dumps(body).encode()
        result["headers"]["content-type"] = "application/json"
        result["headers"]["content-length"] = str(len(raw))
        result["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
        result["isBase64Encoded"] = base64_body
    return result


def claims(
    tenant: str = "northwind", user: str = "dana", roles: str = "[revenue_director]"
) -> dict[str, str]:
    return {
        **TEMPLATE["requestContext"]["authorizer"]["jwt"]["claims"],
        "tenant_id": tenant,
        "sub": user,
        "roles": roles,
    }


def call(handler: Mangum, request: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Invoke the handler; (status, headers, decoded JSON body or text)."""
    response = handler(request, _Context())  # type: ignore[arg-type]
    assert response["isBase64Encoded"] is False
    headers = {k.lower(): v for k, v in response["headers"].items()}
    text = response["body"]
    content_type = headers.get("content-type", "")
    return response["statusCode"], headers, json.loads(text) if "json" in content_type else text


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A SQLite store and account facts, named by the environment as on Lambda."""
    write_accounts(tmp_path / "accounts", datetime.now(UTC))
    store_url = f"sqlite:///{tmp_path / 'plans.db'}"
    store = open_store(store_url)
    store.init()
    store.close()
    env = {
        "PLANSTORE_URL": store_url,
        "PLAN_API_POLICIES": f"{REPO / 'policies'}:{REPO / 'plan_types'}",
        "PLAN_API_ACCOUNTS": str(tmp_path / "accounts"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PLAN_API_AUTH", raising=False)
    monkeypatch.delenv("PLAN_API_JWT_SECRET", raising=False)
    yield env
    loop = asyncio.get_event_loop_policy().get_event_loop()
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def handler(lambda_env: dict[str, str]) -> Iterator[Mangum]:
    adapter = lambda_api.build_handler()
    try:
        yield adapter
    finally:
        adapter.app.state.context.close()  # type: ignore[attr-defined]


def test_claims_from_the_jwt_authorizer_identify_the_caller(handler: Mangum) -> None:
    status, headers, body = call(handler, event("GET", "/v1/me"))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == {
        "tenant_id": "northwind",
        "user_id": "dana",
        "roles": ["revenue_director"],
        "human": True,
    }


def test_claims_from_a_lambda_authorizer_identify_the_caller(handler: Mangum) -> None:
    context = {"lambda": {"tenant_id": "acme-corp", "sub": "lee", "roles": ["revenue_manager"]}}
    status, _, body = call(handler, event("GET", "/v1/me", authorizer=context))
    assert status == 200
    assert (body["tenant_id"], body["user_id"], body["roles"]) == (
        "acme-corp",
        "lee",
        ["revenue_manager"],
    )


def test_without_authorizer_claims_the_request_is_unauthenticated(handler: Mangum) -> None:
    status, headers, body = call(handler, event("GET", "/v1/plans", authorizer={}))
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "/problems/unauthenticated"


def test_a_bearer_header_is_not_trusted_behind_the_gateway(handler: Mangum) -> None:
    request = event("GET", "/v1/me", authorizer={}, headers={"authorization": "Bearer forged"})
    assert call(handler, request)[0] == 401


def test_a_plan_goes_through_its_lifecycle_over_lambda(handler: Mangum) -> None:
    proposer = claims(user="ae1", roles="[account_executive]")
    create = event(
        "POST",
        "/v1/plans",
        body={"account_id": "acme", "plan_type": "RENEWAL_DEFENSE", "steps": ALL_STEPS},
        claims=proposer,
        base64_body=True,
    )
    status, headers, plan = call(handler, create)
    assert status == 201, plan
    assert headers["etag"] == '"1"'
    assert plan["tenant_id"] == "northwind"
    pid = plan["plan_id"]
    status, _, body = call(
        handler, event("POST", f"/v1/plans/{pid}/approve", body={}, claims=claims())
    )
    assert (status, body["status"]) == (200, "APPROVED")
    status, headers, body = call(
        handler, event("POST", f"/v1/plans/{pid}/activate", body={}, claims=claims())
    )
    assert (status, body["status"]) == (200, "ACTIVE")
    pause = event(
        "POST",
        f"/v1/plans/{pid}/pause",
        body={"reason": "on hold"},
        claims=proposer,
        headers={"if-match": headers["etag"], "idempotency-key": "lambda-pause-1"},
    )
    status, _, body = call(handler, pause)
    assert (status, body["status"]) == (200, "PAUSED"), body
    status, headers, _ = call(handler, pause)
    assert (status, headers["idempotent-replayed"]) == (200, "true")
    status, _, listing = call(handler, event("GET", "/v1/plans", query={"status": "PAUSED"}))
    assert [p["plan_id"] for p in listing["items"]] == [pid]
    status, _, ledger = call(handler, event("GET", f"/v1/plans/{pid}/ledger"))
    assert [(e["event"], e["actor"]) for e in ledger["entries"]][-1] == ("paused", "ae1")
    assert ledger["why_stopped"]["reason"] == "on hold"
    # another tenant sees nothing of it
    other = claims(tenant="globex-inc")
    status, _, problem = call(handler, event("GET", f"/v1/plans/{pid}", claims=other))
    assert (status, problem["type"]) == (404, "/problems/not-found")
    status, _, listing = call(handler, event("GET", "/v1/plans", claims=other))
    assert listing["items"] == []


def test_refusals_are_problem_documents_over_lambda(handler: Mangum) -> None:
    status, headers, body = call(handler, event("POST", "/v1/plans/x/pause", body={}))
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "reason"


def test_the_page_and_the_openapi_document_are_served_as_text(handler: Mangum) -> None:
    status, headers, text = call(handler, event("GET", "/ui/"))
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "Active Plans" in text
    status, _, document = call(handler, event("GET", "/openapi.json"))
    assert status == 200 and "/v1/plans" in document["paths"]


def test_the_module_handler_builds_the_app_once_from_the_environment(
    lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_api, "_HANDLERS", {})
    try:
        first = lambda_api.handler(event("GET", "/v1/me"), _Context())
        second = lambda_api.handler(event("GET", "/healthz"), _Context())
        assert (first["statusCode"], second["statusCode"]) == (200, 200)
        assert len(lambda_api._HANDLERS) == 1
    finally:
        for adapter in lambda_api._HANDLERS.values():
            adapter.app.state.context.close()  # type: ignore[attr-defined]


def test_gateway_mode_needs_no_secret_but_jwt_mode_does() -> None:
    assert ApiSettings(auth="gateway").jwt_secret is None
    with pytest.raises(ValueError, match="no JWT secret"):
        ApiSettings(auth="jwt")
