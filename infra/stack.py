"""The planpolicy stack: tables, the scheduled orchestrator, the Plans API, alarms.

Resources
    - ``{prefix}revenue-plans`` and ``{prefix}plan-ledger`` from the store
      adapter's :func:`~orchestrator.adapters.dynamodb.table_definitions`, and
      the API's ``{prefix}api-idempotency``; on-demand, point-in-time recovery,
      deletion protection, KMS encryption (AWS-managed key), retained on delete.
    - The orchestrator function (one poll tick per invocation), invoked by an
      EventBridge schedule (``schedule_rate``).
    - The API function (the Plans API and the Active Plans page) behind an HTTP
      API whose JWT authorizer verifies the caller's token; the function reads
      the tenant and roles from the claims the authorizer passes on.
    - Log groups with retention, an access log for the HTTP API, and alarms on
      orchestrator errors and on plans stuck past their due time, sent to an
      encrypted SNS topic.

Least privilege
    Each function has its own role with inline statements only: its own log
    group, and on each table exactly the item actions its code issues
    (:data:`POLL_ACCESS`, :data:`API_ACCESS`), on the table and the named
    indexes it queries, never ``*``. Deleting from the plans table is limited to
    activation-guard items (partition keys ``G#...``). No role may update or
    delete ledger items, and the ledger table's resource policy denies those
    actions to every principal, so the ledger stays append-only even against a
    future mis-grant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jsii
from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.layer import LAMBDA_ARCHITECTURE
from infra.settings import LOG_RETENTION_DAYS, DeploySettings
from infra.staging import BUNDLE_DIRS
from infra.tables import add_table, idempotency_definition
from orchestrator import lambda_handlers
from orchestrator.adapters.dynamodb import GSI_ACCOUNT, GSI_DUE, GSI_TENANT, table_definitions
from orchestrator.api import lambda_api
from orchestrator.stores import STORE_URL_ENV
from orchestrator.wiring import EXECUTOR_ENV, POLICIES_ENV

__all__ = [
    "API_ACCESS",
    "API_HANDLER",
    "METRIC_NAMESPACE_ENV",
    "METRIC_PAST_DUE",
    "POLL_ACCESS",
    "POLL_HANDLER",
    "PUBLIC_ROUTES",
    "PlanPolicyStack",
    "TableAccess",
]

POLL_HANDLER: Final = f"{lambda_handlers.__name__}.{lambda_handlers.poll_handler.__name__}"
"""The orchestrator function's handler: one poll tick per scheduled event."""
API_HANDLER: Final = f"{lambda_api.__name__}.{lambda_api.handler.__name__}"
"""The API function's handler: the Plans API app behind Mangum."""

METRIC_NAMESPACE_ENV: Final = lambda_handlers.METRIC_NAMESPACE_ENV
"""Variable naming the CloudWatch namespace the poll handler publishes its metrics in."""
METRIC_PAST_DUE: Final = "PlansPastDue"
"""Metric (no dimensions) each poll tick emits: plans still due 15 minutes after their time."""

PUBLIC_ROUTES: Final = (
    "/",
    "/ui",
    "/ui/{proxy+}",
    "/healthz",
    "/openapi.json",
    "/problems/{proxy+}",
)
"""GET routes served without a token: the page's static files and documentation only."""
API_ROUTE: Final = "/v1/{proxy+}"
"""Every Plans API route; each request needs a token the authorizer accepts."""

_PY_RUNTIME = lambda_.Runtime.PYTHON_3_11
_ARCHITECTURE = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}[
    LAMBDA_ARCHITECTURE
]  # the layer's wheels are built for this architecture
_LEDGER_FORBIDDEN = (
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
)


@dataclass(frozen=True)
class TableAccess:
    """What a function may do on one table: item actions, and the indexes it may query."""

    actions: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    delete_prefix: str | None = None
    """If set, ``DeleteItem`` only on items whose partition key starts with it."""


# The actions mirror the adapters' calls. TransactWriteItems is not an IAM
# action: each item of a transaction is authorised as its own PutItem,
# UpdateItem, DeleteItem or ConditionCheckItem.
POLL_ACCESS: Final = {
    "plans": TableAccess(
        (
            "dynamodb:GetItem",  # plan, attempt and bookkeeping reads
            "dynamodb:Query",  # the due index
            "dynamodb:PutItem",  # attempt records, activation guard
            "dynamodb:UpdateItem",  # lease, plan updates
            "dynamodb:ConditionCheckItem",  # fence checks in transactions
            "dynamodb:DeleteItem",  # guard release on a terminal transition
        ),
        indexes=(GSI_DUE,),
        delete_prefix="G#",
    ),
    "ledger": TableAccess(("dynamodb:PutItem",)),  # append (attribute_not_exists)
}
"""The orchestrator function's table access."""

API_ACCESS: Final = {
    "plans": TableAccess(
        (
            "dynamodb:GetItem",
            "dynamodb:Query",  # the tenant-status and tenant-account indexes
            "dynamodb:PutItem",  # activation guard, attempts (approve-step)
            "dynamodb:UpdateItem",  # plan transitions
            "dynamodb:DeleteItem",  # guard release on abort
        ),
        indexes=(GSI_TENANT, GSI_ACCOUNT),
        delete_prefix="G#",
    ),
    "ledger": TableAccess(("dynamodb:PutItem", "dynamodb:Query")),
    "idempotency": TableAccess(
        (
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
    ),
}
"""The API function's table access."""


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """HTTP API access logs: one JSON line per request into ``log_group``."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        """Where the lines go."""
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        """Request id, caller, route, status and latency; never the token."""
        return apigateway.AccessLogFormat.custom(
            json.dumps(
                {
                    "requestId": "$context.requestId",
                    "ip": "$context.identity.sourceIp",
                    "sub": "$context.authorizer.claims.sub",
                    "routeKey": "$context.routeKey",
                    "status": "$context.status",
                    "latencyMs": "$context.responseLatency",
                    "integrationError": "$context.integrationErrorMessage",
                    "authorizerError": "$context.authorizer.error",
                }
            )
        )


class PlanPolicyStack(Stack):
    """Every AWS resource of a planpolicy deployment (see the module docstring)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        code_dir: Path,
        layer_dir: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.metric_namespace = f"PlanPolicy/{settings.stack_name}"
        prefix = settings.table_prefix
        plans_def, ledger_def = table_definitions(prefix)
        self.tables = {
            "plans": add_table(self, "PlansTable", plans_def),
            "ledger": add_table(
                self,
                "LedgerTable",
                ledger_def,
                resource_policy=self._append_only_policy(ledger_def["TableName"]),
            ),
            "idempotency": add_table(
                self,
                "IdempotencyTable",
                idempotency_definition(prefix),
                time_to_live_attribute="ttl",
            ),
        }

        code = lambda_.Code.from_asset(str(code_dir))
        self.deps_layer = lambda_.LayerVersion(
            self,
            "DependencyLayer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[_PY_RUNTIME],
            compatible_architectures=[_ARCHITECTURE],
            description="Third-party packages of planpolicy (python -m infra.layer)",
        )
        store_url = f"dynamodb://{prefix}"  # the region is the function's own (AWS_REGION)
        common_env = {
            STORE_URL_ENV: store_url,
            # cel-python's parse tables, cached per sandbox (the task root is read-only)
            "PLANPOLICY_CACHE_DIR": "/tmp/planpolicy-cache",
        }
        self.poll_function = self._function(
            "PollFunction",
            handler=POLL_HANDLER,
            code=code,
            description="planpolicy orchestrator: one poll tick per scheduled event",
            timeout=Duration.minutes(4),
            access=POLL_ACCESS,
            environment={
                **common_env,
                POLICIES_ENV: ":".join(BUNDLE_DIRS),
                EXECUTOR_ENV: settings.executor_url,
                METRIC_NAMESPACE_ENV: self.metric_namespace,
            },
        )
        self.api_function = self._function(
            "ApiFunction",
            handler=API_HANDLER,
            code=code,
            description="planpolicy Plans API and Active Plans page",
            timeout=Duration.seconds(25),  # below the HTTP API's 30 s integration limit
            access=API_ACCESS,
            environment={
                **common_env,
                "PLAN_API_AUTH": "gateway",
                "PLAN_API_POLICIES": ":".join(BUNDLE_DIRS),
                "PLAN_API_IDEMPOTENCY_URL": store_url,
                # The table is this stack's; the function never creates tables.
                "PLAN_API_IDEMPOTENCY_INIT": "0",
            },
        )
        self._schedule()
        self.http_api = self._http_api()
        self._alarms()
        CfnOutput(self, "ApiUrl", value=self.http_api.api_endpoint)
        for name, table in self.tables.items():
            CfnOutput(self, f"{name.capitalize()}TableName", value=table.table_name)

    # -- tables --------------------------------------------------------------

    @staticmethod
    def _append_only_policy(table_name: str) -> iam.PolicyDocument:
        """The ledger's resource policy: nobody updates or deletes its items."""
        arn = f"arn:{Aws.PARTITION}:dynamodb:{Aws.REGION}:{Aws.ACCOUNT_ID}:table/{table_name}"
        return iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="LedgerIsAppendOnly",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=list(_LEDGER_FORBIDDEN),
                    resources=[arn],
                )
            ]
        )

    # -- functions -----------------------------------------------------------

    def _function(
        self,
        construct_id: str,
        *,
        handler: str,
        code: lambda_.Code,
        description: str,
        timeout: Duration,
        access: dict[str, TableAccess],
        environment: dict[str, str],
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=self._retention(),
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{construct_id}: its log group and its tables, nothing else",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for name, grant in access.items():
            self._grant(role, name, grant)
        function = lambda_.Function(
            self,
            construct_id,
            runtime=_PY_RUNTIME,
            architecture=_ARCHITECTURE,
            handler=handler,
            code=code,
            layers=[self.deps_layer],
            role=role,
            log_group=log_group,
            description=description,
            timeout=timeout,
            memory_size=1024,
            environment=environment,
        )
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="The functions run the Python the project is built and tested on "
                "(3.11, as in CI and the dependency layer's wheels); moving to a newer "
                "runtime is a project-wide upgrade, not a deployment setting.",
            )
        )
        # CDK adds a DependsOn on the role that the function's GetAtt of the role
        # already implies; harmless, and cfn-lint's W3005 says so. Ignored for
        # this resource only.
        cfn_function = function.node.default_child
        cfn_function.add_metadata(  # type: ignore[union-attr]
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        return function

    def _grant(self, role: iam.Role, name: str, grant: TableAccess) -> None:
        table: dynamodb.Table = self.tables[name]
        forbidden = set(grant.actions) & set(_LEDGER_FORBIDDEN) if name == "ledger" else set()
        if forbidden:
            raise ValueError(f"the ledger is append-only: {sorted(forbidden)} may not be granted")
        resources = [table.table_arn]
        resources += [f"{table.table_arn}/index/{index}" for index in grant.indexes]
        actions = [a for a in grant.actions if a != "dynamodb:DeleteItem"]
        role.add_to_policy(
            iam.PolicyStatement(
                sid=f"{name.capitalize()}Items", actions=actions, resources=resources
            )
        )
        if "dynamodb:DeleteItem" in grant.actions:
            conditions = None
            if grant.delete_prefix is not None:
                conditions = {
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{grant.delete_prefix}*"]}
                }
            role.add_to_policy(
                iam.PolicyStatement(
                    sid=f"{name.capitalize()}Delete",
                    actions=["dynamodb:DeleteItem"],
                    resources=[table.table_arn],
                    conditions=conditions,
                )
            )

    def _retention(self) -> logs.RetentionDays:
        """The ``RetentionDays`` member for the configured number of days.

        The enum lists the periods in CloudWatch's order, as LOG_RETENTION_DAYS
        does; tests check the template's ``RetentionInDays``.
        """
        members = dict(zip(LOG_RETENTION_DAYS, logs.RetentionDays, strict=False))
        return members[self.settings.log_retention_days]

    # -- schedule ------------------------------------------------------------

    def _schedule(self) -> None:
        rule = events.Rule(
            self,
            "PollSchedule",
            description="planpolicy: one orchestrator poll tick",
            schedule=events.Schedule.expression(self.settings.schedule_rate),
        )
        # A failed tick is not retried: the next scheduled tick repeats the same
        # idempotent work, and the error alarm reports the failure.
        rule.add_target(
            targets.LambdaFunction(
                self.poll_function, retry_attempts=0, max_event_age=Duration.minutes(5)
            )
        )

    # -- HTTP API ------------------------------------------------------------

    def _http_api(self) -> apigwv2.HttpApi:
        settings = self.settings
        authorizer = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer",
            settings.jwt_issuer,
            jwt_audience=list(settings.jwt_audience),
            identity_source=["$request.header.Authorization"],
        )
        integration = integrations.HttpLambdaIntegration(
            "ApiIntegration",
            self.api_function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="planpolicy Plans API",
            create_default_stage=False,
        )
        api.add_routes(
            path=API_ROUTE,
            methods=[apigwv2.HttpMethod.ANY],
            integration=integration,
            authorizer=authorizer,
        )
        for path in PUBLIC_ROUTES:
            for route in api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.GET], integration=integration
            ):
                Validations.of(route).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-APIG4",
                        reason="Static page files and API documentation, no plan data; "
                        "every /v1 route requires a token the JWT authorizer accepts.",
                    )
                )
        access_logs = logs.LogGroup(self, "HttpApiAccessLogs", retention=self._retention())
        apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(access_logs),
            throttle=apigwv2.ThrottleSettings(rate_limit=50, burst_limit=100),
        )
        return api

    # -- alarms --------------------------------------------------------------

    def _alarms(self) -> None:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="planpolicy alarms",
            enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
        )
        if self.settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.settings.alarm_email))
        notify = cloudwatch_actions.SnsAction(topic)
        errors = cloudwatch.Alarm(
            self,
            "PollErrorsAlarm",
            alarm_description="The orchestrator's poll tick failed (see its log group).",
            metric=self.poll_function.metric_errors(
                period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        past_due = cloudwatch.Alarm(
            self,
            "PlansPastDueAlarm",
            alarm_description=(
                "Plans are stuck past their due time: ticks keep finding overdue plans, "
                "or no tick has reported for 30 minutes."
            ),
            metric=cloudwatch.Metric(
                namespace=self.metric_namespace,
                metric_name=METRIC_PAST_DUE,
                period=Duration.minutes(10),
                statistic=cloudwatch.Stats.MINIMUM,
            ),
            threshold=1,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # no data means no tick has run: plans are stuck as surely as when overdue
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        for alarm in (errors, past_due):
            alarm.add_alarm_action(notify)
            alarm.add_ok_action(notify)
