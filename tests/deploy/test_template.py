"""The synthesized template's security and wiring properties, read from its JSON."""

from __future__ import annotations

import json

import pytest
from tests.deploy.conftest import TEST_CONTEXT, Synthesized
from tests.deploy.iam import (
    Request,
    allowed,
    resolve,
    resource_policy_statements,
    role_statements,
    table_arn,
)

PREFIX = str(TEST_CONTEXT["table_prefix"])
PLANS, LEDGER, IDEMPOTENCY = (
    f"{PREFIX}{n}" for n in ("revenue-plans", "plan-ledger", "api-idempotency")
)
LEDGER_WRITES = ("UpdateItem", "DeleteItem", "BatchWriteItem", "PartiQLUpdate", "PartiQLDelete")


def _role_of(synth: Synthesized, function: str) -> str:
    _, resource = synth.resource("AWS::Lambda::Function", function)
    return str(resource["Properties"]["Role"]["Fn::GetAtt"][0])


def _dynamodb_statements(synth: Synthesized, function: str) -> list[dict[str, object]]:
    """The raw (unresolved) DynamoDB statements of a function's role."""
    role = _role_of(synth, function)
    raw = []
    for resource in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in resource["Properties"]["Roles"]:
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = actions if isinstance(actions, list) else [actions]
                if any(str(a).startswith("dynamodb:") for a in actions):
                    raw.append(statement)
    return raw


def test_every_table_is_encrypted_recoverable_and_protected(synthesized: Synthesized) -> None:
    tables = synthesized.resources("AWS::DynamoDB::Table")
    names = {t["Properties"]["TableName"] for t in tables.values()}
    assert names == {PLANS, LEDGER, IDEMPOTENCY}
    for table in tables.values():
        props = table["Properties"]
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"].get("SSEType", "KMS") == "KMS"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("function", ["PollFunction", "ApiFunction"])
def test_no_role_may_update_or_delete_ledger_items(synthesized: Synthesized, function: str) -> None:
    identity = role_statements(synthesized.template, _role_of(synthesized, function))
    resource = resource_policy_statements(synthesized.template)
    for action in LEDGER_WRITES:
        request = Request(f"dynamodb:{action}", table_arn(LEDGER), "P#acme#plan-1")
        assert not allowed(identity, resource, request), f"{function} may {action} the ledger"


@pytest.mark.parametrize("function", ["PollFunction", "ApiFunction"])
def test_no_function_may_create_change_or_drop_tables(
    synthesized: Synthesized, function: str
) -> None:
    actions = {
        str(action)
        for statement in _dynamodb_statements(synthesized, function)
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    control_plane = {
        "dynamodb:CreateTable",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTable",
        "dynamodb:*",
    }
    assert actions and not actions & control_plane


def test_the_api_function_does_not_create_its_idempotency_table_at_start(
    synthesized: Synthesized,
) -> None:
    _, resource = synthesized.resource("AWS::Lambda::Function", "ApiFunction")
    assert resource["Properties"]["Environment"]["Variables"]["PLAN_API_IDEMPOTENCY_INIT"] == "0"


def test_the_ledger_table_denies_updates_and_deletes_to_everyone(synthesized: Synthesized) -> None:
    _, ledger = synthesized.resource("AWS::DynamoDB::Table", "LedgerTable")
    statements = ledger["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]
    (deny,) = statements
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": "*"}
    assert {f"dynamodb:{a}" for a in LEDGER_WRITES} <= set(deny["Action"])
    assert resolve(synthesized.template, deny["Resource"]) == table_arn(LEDGER)


def test_the_orchestrator_may_delete_only_activation_guards(synthesized: Synthesized) -> None:
    identity = role_statements(synthesized.template, _role_of(synthesized, "PollFunction"))
    resource = resource_policy_statements(synthesized.template)
    guard = Request("dynamodb:DeleteItem", table_arn(PLANS), "G#acme#acct-1#RENEWAL_DEFENSE")
    plan = Request("dynamodb:DeleteItem", table_arn(PLANS), "P#acme#plan-1")
    assert allowed(identity, resource, guard)
    assert not allowed(identity, resource, plan)
    assert not allowed(identity, resource, Request("dynamodb:DeleteItem", table_arn(LEDGER), "P#a"))


@pytest.mark.parametrize("function", ["PollFunction", "ApiFunction"])
def test_data_plane_grants_name_their_resources(synthesized: Synthesized, function: str) -> None:
    """No wildcard action or resource on DynamoDB; every resource is a table or a named index."""
    tables = {
        resolve(synthesized.template, {"Fn::GetAtt": [name, "Arn"]}): table
        for name, table in synthesized.resources("AWS::DynamoDB::Table").items()
    }
    for statement in _dynamodb_statements(synthesized, function):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in actions if isinstance(actions, list) else [actions]:
            assert "*" not in str(action), statement
        resources = statement["Resource"]
        for raw in resources if isinstance(resources, list) else [resources]:
            arn = resolve(synthesized.template, raw)
            assert "*" not in arn, statement
            table_part, _, index = arn.partition("/index/")
            assert table_part in tables, arn
            indexes = {
                i["IndexName"]
                for i in tables[table_part]["Properties"].get("GlobalSecondaryIndexes", [])
            }
            assert not index or index in indexes, arn


def test_each_function_reaches_only_its_own_tables_and_actions(synthesized: Synthesized) -> None:
    from infra.stack import API_ACCESS, POLL_ACCESS

    names = {"plans": PLANS, "ledger": LEDGER, "idempotency": IDEMPOTENCY}
    for function, access in (("PollFunction", POLL_ACCESS), ("ApiFunction", API_ACCESS)):
        granted: dict[str, set[str]] = {}
        for statement in _dynamodb_statements(synthesized, function):
            actions = statement["Action"]
            resources = statement["Resource"]
            for raw in resources if isinstance(resources, list) else [resources]:
                arn = resolve(synthesized.template, raw)
                for action in actions if isinstance(actions, list) else [actions]:
                    granted.setdefault(arn, set()).add(str(action))
        expected: dict[str, set[str]] = {}
        for table, grant in access.items():
            arn = table_arn(names[table])
            expected[arn] = set(grant.actions)
            for index in grant.indexes:
                expected[f"{arn}/index/{index}"] = set(grant.actions) - {"dynamodb:DeleteItem"}
        assert granted == expected, function
    # the orchestrator needs neither the API's idempotency table nor its list indexes
    assert "idempotency" not in POLL_ACCESS


def test_roles_have_no_managed_policies_and_logs_go_to_their_own_group(
    synthesized: Synthesized,
) -> None:
    for function in ("PollFunction", "ApiFunction"):
        role_id = _role_of(synthesized, function)
        role = synthesized.template["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        _, resource = synthesized.resource("AWS::Lambda::Function", function)
        log_group = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        logs = [
            s
            for s in role_statements(synthesized.template, role_id)
            if any(a.startswith("logs:") for a in s.actions)
        ]
        assert logs and all(
            s.resources == (resolve(synthesized.template, {"Fn::GetAtt": [log_group, "Arn"]}),)
            for s in logs
        )


def test_log_groups_keep_logs_for_the_configured_days(synthesized: Synthesized) -> None:
    groups = synthesized.resources("AWS::Logs::LogGroup")
    assert len(groups) == 3  # two functions and the HTTP API's access log
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]


def test_the_poll_function_runs_on_the_configured_schedule(synthesized: Synthesized) -> None:
    (rule,) = synthesized.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == TEST_CONTEXT["schedule_rate"]
    assert rule["Properties"]["State"] == "ENABLED"
    (target,) = rule["Properties"]["Targets"]
    poll_id, _ = synthesized.resource("AWS::Lambda::Function", "PollFunction")
    assert target["Arn"] == {"Fn::GetAtt": [poll_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_the_http_api_verifies_jwts_on_every_plans_route(synthesized: Synthesized) -> None:
    from infra.stack import PUBLIC_ROUTES

    ((authorizer_id, authorizer),) = synthesized.resources("AWS::ApiGatewayV2::Authorizer").items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"]["Issuer"] == TEST_CONTEXT["jwt_issuer"]
    assert props["JwtConfiguration"]["Audience"] == ["plans-api", "plans-ui"]
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synthesized.resources("AWS::ApiGatewayV2::Route").values()
    }
    assert routes["ANY /v1/{proxy+}"]["AuthorizationType"] == "JWT"
    assert routes["ANY /v1/{proxy+}"]["AuthorizerId"] == {"Ref": authorizer_id}
    public = {key for key, route in routes.items() if route.get("AuthorizationType") != "JWT"}
    assert public == {f"GET {path}" for path in PUBLIC_ROUTES}
    assert not any("/v1" in key for key in public)


def test_the_api_stage_logs_access_without_tokens(synthesized: Synthesized) -> None:
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    fields = json.loads(settings["Format"])
    assert "$context.requestId" in fields.values()
    assert not any("authorization" in str(v).lower() for v in fields.values())
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_alarms_watch_poll_errors_and_plans_past_due(synthesized: Synthesized) -> None:
    from orchestrator.lambda_handlers import METRIC_NAMESPACE_ENV

    alarms = {
        name: alarm["Properties"]
        for name, alarm in synthesized.resources("AWS::CloudWatch::Alarm").items()
    }
    assert len(alarms) == 2
    poll_id, poll = synthesized.resource("AWS::Lambda::Function", "PollFunction")
    errors = next(a for a in alarms.values() if a["MetricName"] == "Errors")
    assert errors["Namespace"] == "AWS/Lambda"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": poll_id}}]
    past_due = next(a for a in alarms.values() if a["MetricName"] == "PlansPastDue")
    namespace = poll["Properties"]["Environment"]["Variables"][METRIC_NAMESPACE_ENV]
    assert past_due["Namespace"] == namespace
    assert "Dimensions" not in past_due  # the handler emits the metric without dimensions
    assert past_due["TreatMissingData"] == "breaching"  # no tick at all is also stuck
    for alarm in alarms.values():
        assert alarm["AlarmActions"] and alarm["AlarmActions"] == alarm["OKActions"]
    (topic,) = synthesized.resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"]


def test_functions_ship_the_policy_bundle_and_share_one_layer(synthesized: Synthesized) -> None:
    functions = synthesized.resources("AWS::Lambda::Function")
    assets = set()
    for function in functions.values():
        assert function["Properties"]["Runtime"] == "python3.11"
        assert len(function["Properties"]["Layers"]) == 1
        assets.add(function["Metadata"]["aws:asset:path"])
    (asset,) = assets
    staged = synthesized.outdir / asset
    for part in (
        "planpolicy/__init__.py",
        "orchestrator/lambda_handlers.py",
        "orchestrator/api/lambda_api.py",
        "policies",
        "plan_types",
    ):
        assert (staged / part).exists(), part
    assert not list(staged.rglob("__pycache__"))
