"""Authentication: the tenant and roles come from a verified token, or the request is a 401."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from tests.api.harness import DIRECTOR, SECRET, ApiClient, assert_problem

PROTECTED = [
    ("GET", "/v1/me"),
    ("GET", "/v1/plans"),
    ("GET", "/v1/plan-types"),
    ("GET", "/v1/plans/p1"),
    ("GET", "/v1/plans/p1/ledger"),
    ("GET", "/v1/plans/p1/check"),
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans/p1/approve"),
    ("POST", "/v1/plans/p1/activate"),
    ("POST", "/v1/plans/p1/pause"),
    ("POST", "/v1/plans/p1/resume"),
    ("POST", "/v1/plans/p1/abort"),
    ("POST", "/v1/plans/p1/steps/0b6f6f2e-6a43-4a8e-9c43-2a1d6c1f0a01/approve"),
]


def _token(**claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {"sub": "u1", "tenant_id": "t1", "roles": [], "exp": now + 3600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_refuses_a_request_without_a_token(
    api: ApiClient, method: str, path: str
) -> None:
    response = api.http.request(method, path, json={"reason": "x"})
    body = assert_problem(response, 401, "unauthenticated")
    assert "no `Authorization: Bearer` token" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (lambda: "Basic dXNlcjpwYXNz", "not a bearer token"),
        (lambda: "Bearer not-a-jwt", "malformed token"),
        (
            lambda: (
                f"Bearer {jwt.encode({'sub': 'u1', 'tenant_id': 't1', 'exp': 9999999999}, 'another-secret-of-enough-length-000000', algorithm='HS256')}"
            ),
            "bad signature",
        ),
        (lambda: f"Bearer {_token(exp=int(time.time()) - 3600)}", "expired"),
        (lambda: f"Bearer {_token(exp=None)}", "missing `exp` claim"),
        (lambda: f"Bearer {_token(sub=None)}", "missing `sub` claim"),
        (lambda: f"Bearer {_token(tenant_id=None)}", "no valid `tenant_id` claim"),
        (lambda: f"Bearer {_token(tenant_id='../other')}", "no valid `tenant_id` claim"),
        (lambda: f"Bearer {_token(roles='a role with spaces!')}", "not a role name"),
        (lambda: f"Bearer {_token(roles=7)}", "must be a list"),
    ],
    ids=[
        "basic",
        "garbage",
        "wrong-secret",
        "expired",
        "no-exp",
        "no-sub",
        "no-tenant",
        "bad-tenant",
        "bad-roles",
        "roles-not-list",
    ],
)
def test_bad_tokens_are_refused_with_the_reason(
    api: ApiClient, authorization: Callable[[], str], detail: str
) -> None:
    # Tokens are made when the test runs: one made at import could expire before it.
    response = api.http.get("/v1/me", headers={"Authorization": authorization()})
    body = assert_problem(response, 401, "unauthenticated")
    assert detail in body["detail"]


def test_unsigned_tokens_are_refused(api: ApiClient) -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(
        b'{"sub":"u1","tenant_id":"t1","roles":["revenue_director"],"exp":9999999999}'
    ).decode()
    response = api.http.get("/v1/me", headers={"Authorization": f"Bearer {header}.{payload}."})
    assert_problem(response, 401, "unauthenticated")


def test_me_reports_the_token_identity(api: ApiClient) -> None:
    response = api.get("/v1/me", "dana", DIRECTOR)
    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": api.tenant,
        "user_id": "dana",
        "roles": ["revenue_director"],
        "human": True,
    }


def test_health_and_the_openapi_document_need_no_token(api: ApiClient) -> None:
    assert api.http.get("/healthz").json()["status"] == "ok"
    document = api.http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
