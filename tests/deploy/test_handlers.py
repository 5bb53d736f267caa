"""The Lambda handlers, run locally with the environment the template gives them.

Each function is started as Lambda would start it: its handler string and
environment variables read from the synthesized template (nothing added but
what the Lambda runtime itself provides: region and credentials, plus the
endpoint of the test's DynamoDB-compatible server), the staged code asset as
the task root and working directory, the dependencies after it on the path.
The tables are created by the store adapters' own ``init``.

Every DynamoDB request the handlers make is recorded and checked against the
function role's policy in the template (and the tables' resource policies):
a handler that needs an action the stack does not grant fails here, not in
production. Events are real payload shapes: an EventBridge scheduled event and
API Gateway HTTP API (payload 2.0) requests with JWT-authorizer claims.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.api.harness import write_accounts
from tests.deploy.conftest import TEST_CONTEXT, FakeExecutor, Synthesized
from tests.deploy.iam import (
    ACCOUNT,
    REGION,
    allowed,
    requests_of,
    resource_policy_statements,
    role_statements,
)

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.api.idempotency_dynamodb import DynamoDBIdempotencyStore

RUNNER = Path(__file__).with_name("lambda_runner.py")
PREFIX = str(TEST_CONTEXT["table_prefix"])
RUNTIME_ENV = {
    # what the Lambda runtime sets (credentials come from the role there)
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "LANG": "C.UTF-8",
    "TZ": ":UTC",
}


class Function:
    """One Lambda function of the template, runnable in a subprocess."""

    def __init__(self, synthesized: Synthesized, construct_id: str) -> None:
        self.synthesized = synthesized
        self.logical_id, resource = synthesized.resource("AWS::Lambda::Function", construct_id)
        props = resource["Properties"]
        self.handler: str = props["Handler"]
        self.environment: dict[str, str] = props["Environment"]["Variables"]
        assert all(isinstance(v, str) for v in self.environment.values()), self.environment
        self.asset = synthesized.outdir / resource["Metadata"]["aws:asset:path"]
        self.role_id: str = props["Role"]["Fn::GetAtt"][0]
        self.calls: list[dict[str, Any]] = []

    def invoke(self, task_root: Path, endpoint: str, events: list[dict[str, Any]]) -> list[Any]:
        """Run the events through the handler in a fresh process; return its results."""
        spec = task_root.parent / f"{uuid.uuid4().hex}.json"
        out = spec.with_suffix(".out.json")
        spec.write_text(json.dumps({"handler": self.handler, "events": events}), encoding="utf-8")
        env = {
            **self.environment,
            **RUNTIME_ENV,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": self.logical_id,
            "LAMBDA_TASK_ROOT": str(task_root),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(task_root.parent),
            # the task root, then the dependencies (the layer's /opt/python on Lambda)
            "PYTHONPATH": os.pathsep.join([str(task_root), sysconfig.get_paths()["purelib"]]),
        }
        result = subprocess.run(
            [sys.executable, "-S", str(RUNNER), str(spec), str(out)],
            cwd=task_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(out.read_text(encoding="utf-8"))
        for name, location in report["modules"].items():
            if location is not None:
                assert Path(location).is_relative_to(task_root), (name, location)
        self.calls += report["calls"]
        self.stdout = result.stdout
        self.stderr = result.stderr
        return list(report["results"])

    def assert_calls_permitted(self) -> None:
        """Every recorded DynamoDB request is allowed by this function's role."""
        template = self.synthesized.template
        identity = role_statements(template, self.role_id)
        resource = resource_policy_statements(template)
        refused = [
            (request.action, request.resource, request.leading_key)
            for call in self.calls
            for request in requests_of(call)
            if not allowed(identity, resource, request)
        ]
        assert refused == [], f"{self.logical_id} needs grants the template lacks: {refused}"


@pytest.fixture
def task_root(synthesized: Synthesized, tmp_path: Path) -> Path:
    """The staged asset as ``/var/task``, with account facts beside the policy bundle.

    The functions read account facts from the ``accounts`` directory of their task
    root (the default); the facts make the test plan eligible for activation.
    """
    api = Function(synthesized, "ApiFunction")
    root = tmp_path / "task"
    shutil.copytree(api.asset, root)
    write_accounts(root / "accounts", datetime.now(UTC))
    return root


@pytest.fixture
def tables(dynamodb_endpoint: str) -> str:
    """Empty tables, created by the adapters' own ``init``; the endpoint."""
    for store in (DynamoDBStore(PREFIX), DynamoDBIdempotencyStore(PREFIX)):
        try:
            store.init()
        finally:
            store.close()
    return dynamodb_endpoint


def http_event(
    synthesized: Synthesized,
    method: str,
    path: str,
    *,
    user: str | None,
    roles: tuple[str, ...] = (),
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for a route of the template."""
    routes = {
        r["Properties"]["RouteKey"]
        for r in synthesized.resources("AWS::ApiGatewayV2::Route").values()
    }
    route_key = "ANY /v1/{proxy+}" if path.startswith("/v1/") else f"GET {path}"
    assert route_key in routes, route_key
    now = datetime.now(UTC)
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": "a1b2c3d4e5",
        "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "a1b2c3d4e5",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "pytest",
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if user is not None:
        # the JWT authorizer passes verified claims as strings, lists flattened
        context["authorizer"] = {
            "jwt": {
                "claims": {
                    "sub": user,
                    "tenant_id": "tenant-a",
                    "roles": "[" + " ".join(roles) + "]",
                    "iss": str(TEST_CONTEXT["jwt_issuer"]),
                    "aud": "plans-api",
                },
                "scopes": None,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": context["domainName"],
            "content-type": "application/json",
            "accept": "application/json",
            **(headers or {}),
        },
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if route_key.endswith("{proxy+}"):
        event["pathParameters"] = {"proxy": path.removeprefix("/v1/")}
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def scheduled_event(synthesized: Synthesized) -> dict[str, Any]:
    """What EventBridge sends the poll function for the template's rule."""
    (rule_id,) = synthesized.resources("AWS::Events::Rule")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule_id}"],
        "detail": {},
    }


def _json(response: dict[str, Any]) -> Any:
    assert not response.get("isBase64Encoded"), response
    return json.loads(response["body"])


def test_the_handlers_run_with_the_template_environment_and_grants(
    synthesized: Synthesized, task_root: Path, tables: str, fake_executor: FakeExecutor
) -> None:
    """A plan's life through both functions: proposed, approved and aborted through the
    API, activated and advanced by the scheduled poll (one step dispatched)."""
    api = Function(synthesized, "ApiFunction")
    poll = Function(synthesized, "PollFunction")
    director = {"user": "dir", "roles": ("revenue_director",)}
    steps = [{"action_type": "PREP_RENEWAL_BRIEF"}, {"action_type": "REQUEST_RENEWAL_MEETING"}]
    health, unauthenticated, created = api.invoke(
        task_root,
        tables,
        [
            http_event(synthesized, "GET", "/healthz", user=None),
            http_event(synthesized, "GET", "/v1/plans", user=None),
            http_event(
                synthesized,
                "POST",
                "/v1/plans",
                user="ae1",
                roles=("account_executive",),
                body={"account_id": "acme", "plan_type": "RENEWAL_DEFENSE", "steps": steps},
                headers={"idempotency-key": "create-1"},
            ),
        ],
    )
    assert health["statusCode"] == 200
    assert unauthenticated["statusCode"] == 401  # no claims: the authorizer did not run
    assert created["statusCode"] == 201, created["body"] + api.stderr[-3000:]
    plan_id = _json(created)["plan_id"]
    listed, approved, ledger = api.invoke(
        task_root,
        tables,
        [
            http_event(synthesized, "GET", "/v1/plans", **director),
            http_event(
                synthesized,
                "POST",
                f"/v1/plans/{plan_id}/approve",
                **director,
                body={"reason": "worth defending"},
                headers={"idempotency-key": "approve-1"},
            ),
            http_event(synthesized, "GET", f"/v1/plans/{plan_id}/ledger", **director),
        ],
    )
    assert listed["statusCode"] == 200, listed["body"]
    assert plan_id in json.dumps(_json(listed))
    assert approved["statusCode"] == 200, approved["body"]
    assert _json(approved)["status"] == "APPROVED"
    assert ledger["statusCode"] == 200, ledger["body"]

    # the poll function activates the approved plan (the gate decides) and dispatches
    before = set(fake_executor.intents)
    summaries = poll.invoke(task_root, tables, [scheduled_event(synthesized)] * 2)
    assert all(not summary["problems"] for summary in summaries), summaries
    assert sum(summary["due"] for summary in summaries) >= 1
    dispatched = set(fake_executor.intents) - before
    assert any(key.startswith(plan_id) for key in dispatched), summaries
    poll.assert_calls_permitted()
    _assert_emits_the_alarm_metric(synthesized, poll.stdout, expected=len(summaries))

    # aborting the active plan releases its activation guard: the API's guard delete
    shown, aborted = api.invoke(
        task_root,
        tables,
        [
            http_event(synthesized, "GET", f"/v1/plans/{plan_id}", **director),
            http_event(
                synthesized,
                "POST",
                f"/v1/plans/{plan_id}/abort",
                **director,
                body={"reason": "customer renewed early"},
            ),
        ],
    )
    assert _json(shown)["status"] == "ACTIVE", shown["body"]
    assert aborted["statusCode"] == 200, aborted["body"]
    assert any(
        item.get("Delete", {}).get("Key", {}).get("pk", {}).get("S", "").startswith("G#")
        for call in api.calls
        if call["operation"] == "TransactWriteItems"
        for item in call["params"]["TransactItems"]
    )

    # a rejected proposal goes to the ledger table (partition `REJ#tenant`), not the task root
    rejected, listed_rejections = api.invoke(
        task_root,
        tables,
        [
            http_event(
                synthesized,
                "POST",
                "/v1/proposals",
                user="ae1",
                roles=("account_executive",),
                body={"account_id": "unknown-co"},
                headers={"idempotency-key": "propose-1"},
            ),
            http_event(synthesized, "GET", "/v1/proposals/rejected", **director),
        ],
    )
    assert rejected["statusCode"] == 200, rejected["body"] + api.stderr[-3000:]
    assert _json(rejected)["outcome"] == "rejected" and _json(rejected)["rejection_seq"] == 1
    assert listed_rejections["statusCode"] == 200, listed_rejections["body"]
    assert [r["account_id"] for r in _json(listed_rejections)["items"]] == ["unknown-co"]
    assert not list(task_root.rglob("*rejections.jsonl"))
    assert any(
        call["operation"] == "PutItem" and call["params"]["Item"]["pk"]["S"].startswith("REJ#")
        for call in api.calls
    )
    api.assert_calls_permitted()
    assert {"TransactWriteItems", "Query", "GetItem"} <= {c["operation"] for c in api.calls}


def _assert_emits_the_alarm_metric(synthesized: Synthesized, stdout: str, expected: int) -> None:
    """The metric the past-due alarm watches is the one the poll handler emits."""
    (alarm,) = [
        a["Properties"]
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "PlansPastDue"
    ]
    emitted = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]
    assert len(emitted) == expected
    for record in emitted:
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == alarm["Namespace"]
        assert directive["Dimensions"] == [[]]
        assert "PlansPastDue" in {metric["Name"] for metric in directive["Metrics"]}
        assert record["PlansPastDue"] == 0
