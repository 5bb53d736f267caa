"""`POST /v1/proposals` in the Plans API (in process): a stored DRAFT, or a rejection record."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from tests.engine.conftest import REPO
from tests.proposals.conftest import account_data
from tests.proposals.support import candidate

from orchestrator.accounts import StaticAccounts
from orchestrator.adapters.memory import MemoryStore
from orchestrator.api import ApiSettings, create_app
from orchestrator.api.auth import mint_token
from orchestrator.api.context import build_context
from orchestrator.clock import ManualClock
from planpolicy.proposers.bedrock import MODEL_ID_ENV, TOOL_NAME, BedrockProposer, BedrockSettings

SECRET = "proposal-tests-" + "s" * 40


class InProcess:
    """A synchronous client of the ASGI app in this process (one event loop per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.request(method, url, **options)

        return asyncio.run(send())

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)


NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def auth(
    tenant: str = "northwind", user: str = "paul", roles: tuple[str, ...] = ()
) -> dict[str, str]:
    token = mint_token(SECRET, tenant_id=tenant, user_id=user, roles=roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    monkeypatch.delenv("PLANPOLICY_REJECTION_LOG", raising=False)
    monkeypatch.delenv(MODEL_ID_ENV, raising=False)
    accounts = StaticAccounts()
    for name in ("acme", "initech"):
        data = account_data(name)
        accounts.set("northwind", name, data["account"], data["signals"])
    settings = ApiSettings(
        store_url="memory://",
        policy_paths=(str(REPO / "policies"), str(REPO / "plan_types")),
        jwt_secret=SECRET,
        page=False,
    )
    context = build_context(
        settings, store=MemoryStore(), accounts=accounts, clock=ManualClock(NOW)
    )
    yield InProcess(create_app(settings, context=context))
    context.close()


def propose(client: InProcess, body: dict[str, Any], **caller: Any) -> Any:
    return client.post("/v1/proposals", json=body, headers=auth(**caller))


def test_a_draft_is_proposed_and_stored(client: InProcess) -> None:
    response = propose(client, {"account_id": "acme", "owner": "alice"})
    assert response.status_code == 201, response.text
    body = response.json()
    plan = body["plan"]
    assert response.headers["location"] == f"/v1/plans/{plan['plan_id']}"
    assert response.headers["etag"] == '"1"'
    assert body["outcome"] == "drafted" and body["reasons"] == []
    assert plan["status"] == "DRAFT" and plan["owner"] == "alice"
    assert plan["created_by"] == "proposer:rules" and plan["risk"] == "HIGH"
    assert body["proposal"]["requested_by"] == "paul"
    assert body["proposal"]["input_digest"].startswith("sha256:")
    assert body["decision"]["can_activate"] is True
    assert body["simulation"]["activated"] is True
    ledger = client.get(f"/v1/plans/{plan['plan_id']}/ledger", headers=auth()).json()
    assert [e["event"] for e in ledger["entries"]] == ["created", "proposal"]
    # A person approves it as usual; the proposer never could.
    approved = client.post(
        f"/v1/plans/{plan['plan_id']}/approve",
        json={},
        headers=auth(user="dana", roles=("revenue_director",)),
    )
    assert approved.status_code == 200 and approved.json()["status"] == "APPROVED"


def test_a_rejection_is_recorded_and_listed_per_tenant(client: InProcess) -> None:
    response = propose(client, {"account_id": "initech"})
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "rejected" and body["plan"] is None
    assert [r["code"] for r in body["reasons"]] == ["PROPOSAL_CONDITION_FALSE"]
    assert body["rejection_seq"] == 1
    assert client.get("/v1/plans", headers=auth()).json()["items"] == []
    listed = client.get("/v1/proposals/rejected", headers=auth()).json()["items"]
    assert [(r["account_id"], r["event"]) for r in listed] == [("initech", "proposal_rejected")]
    assert client.get("/v1/proposals/rejected", headers=auth(tenant="southwind")).json() == {
        "items": []
    }


def test_an_account_without_facts_fails_closed(client: InProcess) -> None:
    body = propose(client, {"account_id": "unknown-co"}).json()
    assert body["outcome"] == "rejected"
    assert [r["code"] for r in body["reasons"]] == ["RULE_EVALUATION_ERROR"]


def test_goals_from_the_body_limit_the_plan_types(client: InProcess) -> None:
    body = propose(client, {"account_id": "acme", "goals": [{"plan_type": "UPSELL_PUSH"}]}).json()
    assert [r["code"] for r in body["reasons"]] == ["PROPOSAL_NOT_APPLICABLE"]


@pytest.mark.parametrize(
    "body",
    [
        {"account_id": "acme", "status": "APPROVED"},
        {"account_id": "acme", "proposer": "gpt"},
        {"account_id": "bad id"},
        {"account_id": "acme", "history": [[[[[[[[[["deep"]]]]]]]]]]},
        '{"account_id": "acme", "goals": ["\\ud800"]}',
    ],
    ids=["unknown-field", "unknown-proposer", "bad-account-id", "too-deep", "lone-surrogate"],
)
def test_invalid_requests_are_422(client: InProcess, body: dict[str, Any] | str) -> None:
    if isinstance(body, str):
        headers = {**auth(), "Content-Type": "application/json"}
        response = client.post("/v1/proposals", content=body.encode(), headers=headers)
    else:
        response = propose(client, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_unauthenticated_is_401(client: InProcess) -> None:
    assert client.post("/v1/proposals", json={"account_id": "acme"}).status_code == 401
    assert client.get("/v1/proposals/rejected").status_code == 401


def test_bedrock_must_be_enabled(client: InProcess) -> None:
    response = propose(client, {"account_id": "acme", "proposer": "bedrock"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "proposer"


def test_bedrock_cannot_get_a_plan_approved(
    client: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_ID_ENV, "test-model")
    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(bedrock)
    tool_input = candidate(status="APPROVED", approved_by="cro")
    stubber.add_response(
        "converse",
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t", "name": TOOL_NAME, "input": tool_input}}
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1},
        },
    )
    client.app.state.bedrock_proposer = BedrockProposer(  # type: ignore[attr-defined]
        settings=BedrockSettings(model_id="test-model"), client=bedrock
    )
    with stubber:
        body = propose(client, {"account_id": "acme", "proposer": "bedrock"}).json()
    assert body["outcome"] == "rejected"
    assert {r["code"] for r in body["reasons"]} == {"PROPOSAL_FIELD_FORBIDDEN"}
    assert body["proposal"]["model_id"] == "test-model"
    assert client.get("/v1/plans", headers=auth()).json()["items"] == []


def test_idempotent_retries_return_the_first_result(client: InProcess) -> None:
    key = {"Idempotency-Key": "proposal-key-1"}
    first = client.post("/v1/proposals", json={"account_id": "acme"}, headers={**auth(), **key})
    again = client.post("/v1/proposals", json={"account_id": "acme"}, headers={**auth(), **key})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["plan"]["plan_id"] == first.json()["plan"]["plan_id"]
    assert len(client.get("/v1/plans", headers=auth()).json()["items"]) == 1


def test_the_operation_is_documented(client: InProcess) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/proposals"]["post"]
    assert operation["operationId"] == "createProposal"
    assert {"200", "201", "401", "422"} <= set(operation["responses"])
