"""What only the DynamoDB adapter has: table layout, request budget, conditional writes, retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from orchestrator.adapters.dynamodb import (
    GSI_DUE,
    SCHEMA_VERSION,
    DynamoDBStore,
    table_definitions,
)
from orchestrator.errors import (
    FenceLost,
    StoreError,
    StoreNotInitialized,
    StoreUnavailable,
    VersionConflict,
)
from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.records import StepAttempt
from support.plans import T0, created, draft, make_plan


@pytest.fixture
def dynamo(dynamodb_endpoint: str) -> Iterator[tuple[DynamoDBStore, list[dict[str, Any]]]]:
    """A fresh store and the log of requests it sends (operation and parameters)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        sent.append({"op": model.name, **params})

    client.meta.events.register("provide-client-params.dynamodb.*", record)
    store = DynamoDBStore(f"d{uuid.uuid4().hex[:8]}-", client=client)
    store.init()
    sent.clear()
    try:
        yield store, sent
    finally:
        client.close()


def test_table_definitions_are_the_single_source_of_the_layout() -> None:
    plans, ledger = table_definitions("prod-")
    assert plans["TableName"] == "prod-revenue-plans"
    assert ledger["TableName"] == "prod-plan-ledger"
    assert {k["AttributeName"]: k["KeyType"] for k in plans["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert {k["AttributeName"]: k["KeyType"] for k in ledger["KeySchema"]} == {
        "pk": "HASH",
        "seq": "RANGE",
    }
    indexes = {i["IndexName"]: i for i in plans["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"tenant-status", "tenant-account", GSI_DUE}
    assert indexes[GSI_DUE]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    for definition in (plans, ledger):
        assert definition["BillingMode"] == "PAY_PER_REQUEST"
        declared = {a["AttributeName"] for a in definition["AttributeDefinitions"]}
        keys = {k["AttributeName"] for k in definition["KeySchema"]} | {
            k["AttributeName"]
            for index in definition.get("GlobalSecondaryIndexes", [])
            for k in index["KeySchema"]
        }
        assert declared == keys
    assert table_definitions("") == table_definitions()


def test_init_creates_the_defined_tables(dynamo: tuple[DynamoDBStore, Any]) -> None:
    store, _ = dynamo
    client = store._client
    for definition in table_definitions(store.prefix):
        table = client.describe_table(TableName=definition["TableName"])["Table"]
        assert table["KeySchema"] == definition["KeySchema"]
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {
            i["IndexName"] for i in definition.get("GlobalSecondaryIndexes", [])
        }


def test_init_adds_an_index_a_table_lacks(dynamodb_endpoint: str) -> None:
    store = DynamoDBStore(f"m{uuid.uuid4().hex[:8]}-", region="us-east-1")
    try:
        plans = table_definitions(store.prefix)[0]
        older = {
            **plans,
            "GlobalSecondaryIndexes": [
                i for i in plans["GlobalSecondaryIndexes"] if i["IndexName"] != GSI_DUE
            ],
            "AttributeDefinitions": [
                a
                for a in plans["AttributeDefinitions"]
                if a["AttributeName"] not in ("gsi_due_shard", "gsi_due")
            ],
        }
        store._client.create_table(**older)
        store.init()
        table = store._client.describe_table(TableName=store.plans_table)["Table"]
        assert GSI_DUE in {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
        plan = make_plan(next_due_at=T0)
        store.create_plan(plan, created(plan))
        assert [r.plan_id for r in store.due_plans(T0)] == [plan.plan_id]
    finally:
        store.close()


def test_request_budget_per_operation(dynamo: tuple[DynamoDBStore, list[dict[str, Any]]]) -> None:
    store, sent = dynamo

    def count(action: Any) -> list[str]:
        sent.clear()
        action()
        return [request["op"] for request in sent]

    plan = make_plan(status="APPROVED")
    assert count(lambda: store.create_plan(plan, created(plan))) == ["TransactWriteItems"]
    assert count(lambda: store.get_plan("acme", plan.plan_id)) == ["GetItem"]
    activate = plan.model_copy(update={"status": "ACTIVE"})
    # the plan's bookkeeping came with get_plan: the update is one transaction
    assert count(
        lambda: store.update_plan(
            activate, expected_version=1, entries=[draft()], activate_guard=True
        )
    ) == ["TransactWriteItems"]
    # ... and so is the next one, from what the last write stored
    assert count(lambda: store.update_plan(activate, expected_version=2, entries=[draft()])) == [
        "TransactWriteItems"
    ]
    # a store that has not seen the plan at that version reads its bookkeeping first
    other = DynamoDBStore(store.prefix, client=store._client)
    assert count(lambda: other.update_plan(activate, expected_version=3, entries=[draft()])) == [
        "GetItem",
        "TransactWriteItems",
    ]
    assert count(lambda: store.update_plan(activate, expected_version=4, entries=[draft()])) == [
        "GetItem",
        "TransactWriteItems",
    ]
    fences: list[Any] = []
    assert count(
        lambda: fences.append(store.acquire_lease("acme", plan.plan_id, "w", T0, timedelta(1)))
    ) == ["UpdateItem"]
    attempt = StepAttempt(
        tenant_id="acme",
        plan_id=plan.plan_id,
        step_id=plan.steps[0].step_id,
        attempt=1,
        created_at=T0,
        updated_at=T0,
    )
    assert count(lambda: store.put_attempt(attempt, fences[0])) == ["TransactWriteItems"]
    assert count(lambda: store.append_ledger("acme", plan.plan_id, [draft()])) == [
        "GetItem",
        "TransactWriteItems",
    ]


def _two_stores(dynamo: tuple[DynamoDBStore, Any]) -> tuple[DynamoDBStore, DynamoDBStore]:
    """The fixture's store and a second one on the same tables (another worker)."""
    store, _ = dynamo
    return store, DynamoDBStore(store.prefix, client=store._client)


def test_a_remembered_version_that_moved_is_a_conflict_and_writes_nothing(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    mine, theirs = _two_stores(dynamo)
    plan = make_plan(status="APPROVED")
    mine.create_plan(plan, created(plan))
    seen = mine.get_plan("acme", plan.plan_id)
    theirs.update_plan(seen, expected_version=1, entries=[draft()])
    with pytest.raises(VersionConflict) as info:
        mine.update_plan(seen.model_copy(update={"objective": "mine"}), expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    stored = theirs.get_plan("acme", plan.plan_id)
    assert (stored.version, stored.objective) == (2, seen.objective)
    assert len(theirs.ledger("acme", plan.plan_id)) == 2
    # the failure is not remembered: the next try reads, decides and writes
    assert mine.update_plan(stored, expected_version=2, entries=[draft()]).version == 3


def test_a_remembered_fence_that_moved_is_lost_and_writes_nothing(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    mine, theirs = _two_stores(dynamo)
    plan = make_plan(status="ACTIVE")
    mine.create_plan(plan, created(plan))
    fence = mine.acquire_lease("acme", plan.plan_id, "me", T0, timedelta(seconds=30))
    assert fence is not None
    seen = mine.get_plan("acme", plan.plan_id)  # remembers fence 1
    later = T0 + timedelta(minutes=1)
    assert theirs.acquire_lease("acme", plan.plan_id, "them", later, timedelta(seconds=30))
    with pytest.raises(FenceLost):
        mine.update_plan(seen, expected_version=1, entries=[draft()], fence=fence)
    assert theirs.get_plan("acme", plan.plan_id).version == 1
    assert len(theirs.ledger("acme", plan.plan_id)) == 1


def test_a_remembered_fence_older_than_the_callers_lease_is_not_a_loss(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    store, sent = dynamo
    plan = make_plan(status="ACTIVE")
    store.create_plan(plan, created(plan))
    seen = store.get_plan("acme", plan.plan_id)  # remembers fence 0
    fence = store.acquire_lease("acme", plan.plan_id, "me", T0, timedelta(seconds=30))
    assert fence is not None and fence.token == 1
    sent.clear()
    assert store.update_plan(seen, expected_version=1, entries=[draft()], fence=fence).version == 2
    assert [r["op"] for r in sent] == ["TransactWriteItems"]


def test_a_ledger_head_moved_since_remembered_is_read_again(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    (mine, theirs), sent = _two_stores(dynamo), dynamo[1]
    plan = make_plan(status="APPROVED")
    mine.create_plan(plan, created(plan))
    seen = mine.get_plan("acme", plan.plan_id)
    theirs.append_ledger("acme", plan.plan_id, [draft()])  # head 2, version still 1
    sent.clear()
    assert mine.update_plan(seen, expected_version=1, entries=[draft()]).version == 2
    # the remembered head made the ledger put collide on seq 2: read, chain on seq 3
    assert [r["op"] for r in sent] == ["TransactWriteItems", "GetItem", "TransactWriteItems"]
    head, entries = theirs.ledger_snapshot("acme", plan.plan_id)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert verify_chain(entries, head=head) == []


def test_every_state_change_is_conditional_and_the_ledger_only_put_if_absent(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    store, sent = dynamo
    plan = make_plan(status="APPROVED")
    store.create_plan(plan, created(plan))
    active = store.update_plan(
        plan.model_copy(update={"status": "ACTIVE"}),
        expected_version=1,
        entries=[draft(LedgerEvent.ACTIVATED)],
        activate_guard=True,
    )
    fence = store.acquire_lease("acme", plan.plan_id, "w", T0, timedelta(minutes=1))
    assert fence is not None
    store.update_plan(
        active.model_copy(update={"status": "COMPLETED"}),
        expected_version=2,
        entries=[draft(LedgerEvent.COMPLETED)],
        fence=fence,
        release_guard=True,
    )
    store.release_lease(fence)
    store.append_ledger("acme", plan.plan_id, [draft()])
    writes = 0
    for request in sent:
        if request["op"] == "TransactWriteItems":
            for item in request["TransactItems"]:
                [(kind, body)] = item.items()
                writes += 1
                assert body.get("ConditionExpression"), item
                if body["TableName"] == store.ledger_table:
                    assert kind == "Put"
                    assert body["ConditionExpression"] == "attribute_not_exists(pk)"
        elif request["op"] in ("PutItem", "UpdateItem", "DeleteItem"):
            writes += 1
            assert request.get("ConditionExpression"), request
    assert writes >= 10
    assert not any(r["op"] == "BatchWriteItem" for r in sent)
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None


def _stubbed(store: DynamoDBStore) -> Stubber:
    return Stubber(store._client)


def _state_item(plan_id: str, version: int) -> dict[str, Any]:
    return {
        "Item": {
            "version": {"N": str(version)},
            "account_id": {"S": "acct-1"},
            "plan_type": {"S": "RENEWAL_DEFENSE"},
            "ledger_head": {"S": "1:" + "a" * 64},
            "holds_guard": {"BOOL": False},
            "fence": {"N": "0"},
        }
    }


def _cancelled(*codes: str) -> dict[str, Any]:
    return {"CancellationReasons": [{"Code": code} for code in codes]}


def test_transaction_conflicts_are_retried(dynamodb_endpoint: str) -> None:
    store = DynamoDBStore("stub-", region="us-east-1")
    plan = make_plan()
    with _stubbed(store) as stub:
        stub.add_response("get_item", _state_item(plan.plan_id, 1))
        stub.add_client_error(
            "transact_write_items",
            "TransactionCanceledException",
            modeled_fields=_cancelled("TransactionConflict", "None"),
        )
        stub.add_response("transact_write_items", {})
        updated = store.update_plan(plan, expected_version=1, entries=[draft()])
        stub.assert_no_pending_responses()
    assert updated.version == 2
    store.close()


def test_persistent_throttling_is_unavailable_and_retryable(dynamodb_endpoint: str) -> None:
    store = DynamoDBStore("stub-", region="us-east-1")
    with _stubbed(store) as stub:
        stub.add_client_error("get_item", "ProvisionedThroughputExceededException")
        with pytest.raises(StoreUnavailable) as info:
            store.get_plan("acme", "p")
    assert info.value.retryable
    store.close()


def test_a_version_moved_after_the_read_is_a_conflict(dynamodb_endpoint: str) -> None:
    store = DynamoDBStore("stub-", region="us-east-1")
    plan = make_plan()
    with _stubbed(store) as stub:
        stub.add_response("get_item", _state_item(plan.plan_id, 1))
        reasons = _cancelled("ConditionalCheckFailed", "None")
        reasons["CancellationReasons"][0]["Item"] = _state_item(plan.plan_id, 2)["Item"]
        stub.add_client_error(
            "transact_write_items", "TransactionCanceledException", modeled_fields=reasons
        )
        with pytest.raises(VersionConflict) as info:
            store.update_plan(plan, expected_version=1, entries=[draft()])
    assert info.value.actual == 2
    store.close()


def test_init_records_and_guards_the_schema_version(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    store, _ = dynamo
    key = {"pk": {"S": "META"}, "sk": {"S": "SCHEMA"}}
    client = store._client

    def set_version(version: int) -> None:
        client.put_item(TableName=store.plans_table, Item={**key, "version": {"N": str(version)}})

    def version() -> int:
        return int(client.get_item(TableName=store.plans_table, Key=key)["Item"]["version"]["N"])

    assert version() == SCHEMA_VERSION
    set_version(0)
    store.init()
    assert version() == SCHEMA_VERSION
    set_version(SCHEMA_VERSION + 1)
    with pytest.raises(StoreNotInitialized, match="newer than this code supports"):
        store.init()


def test_a_write_that_failed_otherwise_forgets_what_it_remembered(
    dynamo: tuple[DynamoDBStore, list[dict[str, Any]]],
) -> None:
    store, sent = dynamo
    plan = make_plan(status="APPROVED")
    store.create_plan(plan, created(plan))
    seen = store.get_plan("acme", plan.plan_id)
    with _stubbed(store) as stub:  # the outcome of the transaction is unknown to the store
        stub.add_client_error("transact_write_items", "ValidationException")
        with pytest.raises(StoreError):
            store.update_plan(seen, expected_version=1, entries=[draft()])
    sent.clear()
    assert store.update_plan(seen, expected_version=1, entries=[draft()]).version == 2
    assert [r["op"] for r in sent] == ["GetItem", "TransactWriteItems"]
