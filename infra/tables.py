"""DynamoDB tables built from the store adapter's own ``CreateTable`` definitions.

The plan store's keys and indexes are written down once, in
:func:`orchestrator.adapters.dynamodb.table_definitions`; ``init`` creates the
tables from it and this module turns the same dictionaries into CDK tables.
Anything in a definition that this mapping does not understand (a local
secondary index, a stream, provisioned capacity) stops the synthesis instead
of being dropped, so the two can never silently drift apart.

The Plans API's ``Idempotency-Key`` table comes from
:func:`orchestrator.api.idempotency_dynamodb.table_definition`, the same
definition its adapter's ``init`` creates; tests/deploy checks both.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

__all__ = ["add_table", "idempotency_definition", "index_names"]

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_PROJECTIONS = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
    "INCLUDE": dynamodb.ProjectionType.INCLUDE,
}
_KNOWN = {
    "TableName",
    "BillingMode",
    "KeySchema",
    "AttributeDefinitions",
    "GlobalSecondaryIndexes",
}


def idempotency_definition(prefix: str) -> dict[str, Any]:
    """``CreateTable`` arguments of the Plans API's idempotency table (TTL on ``ttl``).

    The adapter's own definition, the one its ``init()`` creates.
    """
    from orchestrator.api.idempotency_dynamodb import table_definition

    return table_definition(prefix)


def index_names(definition: dict[str, Any]) -> list[str]:
    """The global secondary index names of a definition."""
    return [index["IndexName"] for index in definition.get("GlobalSecondaryIndexes", [])]


def _attribute(definition: dict[str, Any], name: str) -> dynamodb.Attribute:
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    if name not in types:
        raise ValueError(f"table `{definition['TableName']}`: key `{name}` has no attribute type")
    return dynamodb.Attribute(name=name, type=_TYPES[types[name]])


def _keys(
    definition: dict[str, Any], key_schema: list[dict[str, str]]
) -> tuple[dynamodb.Attribute, dynamodb.Attribute | None]:
    by_type = {key["KeyType"]: key["AttributeName"] for key in key_schema}
    if set(by_type) - {"HASH", "RANGE"} or "HASH" not in by_type:
        raise ValueError(f"table `{definition['TableName']}`: unusable key schema {key_schema}")
    sort = by_type.get("RANGE")
    return _attribute(definition, by_type["HASH"]), (_attribute(definition, sort) if sort else None)


def add_table(
    scope: Construct,
    construct_id: str,
    definition: dict[str, Any],
    *,
    time_to_live_attribute: str | None = None,
    resource_policy: iam.PolicyDocument | None = None,
) -> dynamodb.Table:
    """A table exactly as ``definition`` describes it, plus the production safeguards.

    Safeguards: on-demand billing, point-in-time recovery, deletion protection,
    encryption at rest with the AWS-managed KMS key, and ``RETAIN`` when the
    stack is deleted.
    """
    unknown = sorted(set(definition) - _KNOWN)
    if unknown:
        raise ValueError(
            f"table `{definition['TableName']}`: the stack does not map {unknown}; "
            "extend infra/tables.py together with the adapter"
        )
    if definition.get("BillingMode", "PAY_PER_REQUEST") != "PAY_PER_REQUEST":
        raise ValueError(f"table `{definition['TableName']}`: only on-demand billing is mapped")
    partition, sort = _keys(definition, definition["KeySchema"])
    table = dynamodb.Table(
        scope,
        construct_id,
        table_name=definition["TableName"],
        partition_key=partition,
        sort_key=sort,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=True,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        removal_policy=RemovalPolicy.RETAIN,
        time_to_live_attribute=time_to_live_attribute,
        resource_policy=resource_policy,
    )
    for index in definition.get("GlobalSecondaryIndexes", []):
        index_partition, index_sort = _keys(definition, index["KeySchema"])
        projection = index["Projection"]
        table.add_global_secondary_index(
            index_name=index["IndexName"],
            partition_key=index_partition,
            sort_key=index_sort,
            projection_type=_PROJECTIONS[projection["ProjectionType"]],
            non_key_attributes=projection.get("NonKeyAttributes"),
        )
    return table
