"""One source of truth: the stack's tables are the ones the store adapters create.

Two proofs: the template equals the adapter's ``table_definitions`` (keys,
attribute types, indexes, projections), and the tables that the adapters'
``init`` actually creates on the DynamoDB-compatible server describe the same
way as the template's.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from tests.deploy.conftest import TEST_CONTEXT, Synthesized

from orchestrator.adapters.dynamodb import DynamoDBStore, table_definitions

PREFIX = str(TEST_CONTEXT["table_prefix"])


def _shape(table: dict[str, Any]) -> dict[str, Any]:
    """Keys, attribute types and indexes of a CreateTable/CloudFormation/DescribeTable dict."""
    indexes = {
        index["IndexName"]: {
            "keys": [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]],
            "projection": index["Projection"]["ProjectionType"],
            "non_key": sorted(index["Projection"].get("NonKeyAttributes", [])),
        }
        for index in table.get("GlobalSecondaryIndexes", [])
    }
    return {
        "name": table["TableName"],
        "keys": [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]],
        "attributes": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
        ),
        "indexes": indexes,
    }


def _template_tables(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    shapes = [
        _shape(t["Properties"]) for t in synthesized.resources("AWS::DynamoDB::Table").values()
    ]
    return {shape["name"]: shape for shape in shapes}


def test_the_template_tables_are_the_adapters_definitions(synthesized: Synthesized) -> None:
    in_template = _template_tables(synthesized)
    for definition in table_definitions(PREFIX):
        assert in_template[definition["TableName"]] == _shape(definition)


def test_a_definition_the_stack_cannot_map_stops_the_synthesis(synthesized: Synthesized) -> None:
    import aws_cdk as cdk  # installed: the session's synthesis ran
    from infra.tables import add_table

    plans = table_definitions(PREFIX)[0]
    stack = cdk.Stack(cdk.App(), "Probe")
    with pytest.raises(ValueError, match="LocalSecondaryIndexes"):
        add_table(stack, "T", {**plans, "LocalSecondaryIndexes": []})
    with pytest.raises(ValueError, match="on-demand"):
        add_table(stack, "U", {**plans, "BillingMode": "PROVISIONED"})


def test_the_adapters_init_creates_the_template_tables(
    synthesized: Synthesized, dynamodb_endpoint: str
) -> None:
    from orchestrator.api.idempotency_dynamodb import DynamoDBIdempotencyStore

    store = DynamoDBStore(PREFIX)
    idempotency = DynamoDBIdempotencyStore(PREFIX)
    try:
        store.init()
        idempotency.init()
    finally:
        store.close()
        idempotency.close()
    client = boto3.client("dynamodb")
    try:
        in_template = _template_tables(synthesized)
        assert sorted(client.list_tables()["TableNames"]) == sorted(in_template)
        for name, shape in in_template.items():
            described = client.describe_table(TableName=name)["Table"]
            assert _shape(described) == shape, name
        ttl = client.describe_time_to_live(TableName=f"{PREFIX}api-idempotency")
        _, table = synthesized.resource("AWS::DynamoDB::Table", "IdempotencyTable")
        spec = table["Properties"]["TimeToLiveSpecification"]
        assert ttl["TimeToLiveDescription"]["AttributeName"] == spec["AttributeName"]
        assert spec["Enabled"] is True
    finally:
        client.close()
