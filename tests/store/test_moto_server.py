"""The test DynamoDB server (tests/support/serial_moto.py) keeps DynamoDB's guarantees.

The store tests trust that server for all-or-nothing transactions and for
exactly one winner among racing conditional writes. It replaces moto's
whole-table snapshot with an undo log of the items a transaction names and
narrows the items a query looks at, so these tests check, against the server
process the session runs:

- a cancelled transaction that named many items (updates in place, puts that
  create items and hash-key buckets, deletes, condition checks, two tables,
  an index key that moves) leaves every table, index and query as it was,
  wherever in the transaction the failing condition is;
- so does a transaction refused for naming one item twice (moto finds that
  midway, after applying the items before it);
- racing conditional puts and racing transactions have exactly one winner,
  and a losing transaction leaves none of its items behind;
- table and index queries, paginated, return what a scan holds, in key order.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

RACERS = 8
ROUNDS = 25


@pytest.fixture
def client(dynamodb_endpoint: str) -> Iterator[Any]:
    made = boto3.client("dynamodb", region_name="us-east-1")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def tables(client: Any) -> tuple[str, str]:
    """A (pk, sk) table with an index on (g, gs), and a table keyed by ``id`` only."""
    prefix = f"m{uuid.uuid4().hex[:8]}-"
    ranged, flat = f"{prefix}ranged", f"{prefix}flat"
    client.create_table(
        TableName=ranged,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "g", "gs")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "gs", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    client.create_table(
        TableName=flat,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    for pk, sk, g, gs, n in [
        ("p1", "s1", "x", "1", 1),
        ("p1", "s2", "x", "2", 2),
        ("p1", "s4", "y", "1", 4),
        ("p2", "s1", "x", "3", 3),
    ]:
        client.put_item(
            TableName=ranged,
            Item={"pk": _s(pk), "sk": _s(sk), "g": _s(g), "gs": _s(gs), "n": _n(n)},
        )
    client.put_item(TableName=flat, Item={"id": _s("b1"), "n": _n(5), "tags": {"SS": ["a"]}})
    return ranged, flat


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _state(client: Any, ranged: str, flat: str) -> dict[str, Any]:
    """Everything a reader can see: both tables, the index, per-key queries."""

    def scan(table: str) -> list[dict[str, Any]]:
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
        return sorted(items, key=repr)

    def query(**kwargs: Any) -> list[dict[str, Any]]:
        return list(client.query(TableName=ranged, **kwargs)["Items"])

    return {
        "ranged": scan(ranged),
        "flat": scan(flat),
        "index": {
            g: query(
                IndexName="by-g",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": _s(g)},
            )
            for g in ("x", "y", "z")
        },
        "keys": {
            pk: query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s(pk)},
                ConsistentRead=True,
            )
            for pk in ("p1", "p2", "p3")
        },
        "counts": [
            client.describe_table(TableName=t)["Table"]["ItemCount"] for t in (ranged, flat)
        ],
    }


def _writes(ranged: str, flat: str) -> list[dict[str, Any]]:
    """Items of every kind, each of which succeeds on the seeded tables."""
    return [
        {  # in place, and the item leaves the index
            "Update": {
                "TableName": ranged,
                "Key": {"pk": _s("p1"), "sk": _s("s1")},
                "UpdateExpression": "SET g = :g, n = n + :one REMOVE gs",
                "ConditionExpression": "n = :n",
                "ExpressionAttributeValues": {":g": _s("z"), ":one": _n(1), ":n": _n(1)},
            }
        },
        {  # a new hash key (bucket)
            "Put": {
                "TableName": ranged,
                "Item": {"pk": _s("p3"), "sk": _s("s1"), "g": _s("x"), "gs": _s("0")},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {  # a new item under an existing hash key
            "Put": {
                "TableName": ranged,
                "Item": {"pk": _s("p1"), "sk": _s("s3"), "g": _s("y"), "gs": _s("0")},
            }
        },
        {  # replaces an item
            "Put": {
                "TableName": ranged,
                "Item": {"pk": _s("p1"), "sk": _s("s4"), "g": _s("z"), "gs": _s("9")},
            }
        },
        {"Delete": {"TableName": ranged, "Key": {"pk": _s("p2"), "sk": _s("s1")}}},
        {  # an absent item
            "ConditionCheck": {
                "TableName": ranged,
                "Key": {"pk": _s("p9"), "sk": _s("s9")},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": flat,
                "Key": {"id": _s("b1")},
                "UpdateExpression": "ADD n :one, tags :t",
                "ExpressionAttributeValues": {":one": _n(1), ":t": {"SS": ["b"]}},
            }
        },
        {"Put": {"TableName": flat, "Item": {"id": _s("b2")}}},
        {
            "Update": {
                "TableName": flat,
                "Key": {"id": _s("b3")},
                "UpdateExpression": "SET n = :one",
                "ExpressionAttributeValues": {":one": _n(1)},
            }
        },
    ]


def _failing(ranged: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": ranged,
            "Key": {"pk": _s("p1"), "sk": _s("s2")},
            "ConditionExpression": "n = :wrong",
            "ExpressionAttributeValues": {":wrong": _n(99)},
        }
    }


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_a_cancelled_transaction_leaves_every_table_as_it_was(
    client: Any, tables: tuple[str, str], position: str
) -> None:
    ranged, flat = tables
    before = _state(client, ranged, flat)
    writes = _writes(ranged, flat)
    at = {"first": 0, "middle": len(writes) // 2, "last": len(writes)}[position]
    items = [*writes[:at], _failing(ranged), *writes[at:]]
    with pytest.raises(ClientError) as info:
        client.transact_write_items(TransactItems=items)
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    codes = [r["Code"] for r in info.value.response["CancellationReasons"]]
    assert codes == ["None"] * at + ["ConditionalCheckFailed"] + ["None"] * (len(writes) - at)
    assert _state(client, ranged, flat) == before
    # the same items without the failing one are all written, at once
    client.transact_write_items(TransactItems=writes)
    after = _state(client, ranged, flat)
    assert after != before

    def keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(i["pk"]["S"], i["sk"]["S"]) for i in items]

    # p1/s1 lost its index range key (out of the index); p1/s4 moved to "z"
    assert keys(after["index"]["z"]) == [("p1", "s4")]
    assert keys(after["index"]["x"]) == [("p3", "s1"), ("p1", "s2")]
    assert [i["sk"]["S"] for i in after["keys"]["p1"]] == ["s1", "s2", "s3", "s4"]
    assert after["keys"]["p2"] == [] and len(after["keys"]["p3"]) == 1
    assert {i["id"]["S"] for i in after["flat"]} == {"b1", "b2", "b3"}


def test_a_transaction_naming_an_item_twice_writes_nothing(
    client: Any, tables: tuple[str, str]
) -> None:
    ranged, flat = tables
    before = _state(client, ranged, flat)
    writes = _writes(ranged, flat)
    twice = {"Delete": {"TableName": ranged, "Key": {"pk": _s("p3"), "sk": _s("s1")}}}
    with pytest.raises(ClientError) as info:
        client.transact_write_items(TransactItems=[*writes, twice])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert _state(client, ranged, flat) == before


@pytest.fixture
def racers(dynamodb_endpoint: str) -> Iterator[list[Any]]:
    """One client per racing thread (each with its own connection to the server)."""
    made = [boto3.client("dynamodb", region_name="us-east-1") for _ in range(RACERS)]
    try:
        yield made
    finally:
        for client in made:
            client.close()


def _race(action: Callable[[Any, int], bool], clients: list[Any]) -> list[int]:
    """Run ``action(client, racer)`` in RACERS threads released together; the winners."""
    barrier = threading.Barrier(RACERS)
    won: list[int] = []
    errors: list[BaseException] = []

    def run(racer: int) -> None:
        try:
            barrier.wait(timeout=30)
            if action(clients[racer], racer):
                won.append(racer)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(racer,)) for racer in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return won


def _cancelled(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def test_racing_conditional_puts_have_exactly_one_winner(
    client: Any, tables: tuple[str, str], racers: list[Any]
) -> None:
    ranged, _ = tables

    def put(key: dict[str, Any], racer_client: Any, racer: int) -> bool:
        try:
            racer_client.put_item(
                TableName=ranged,
                Item={**key, "holder": _s(str(racer))},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            assert _cancelled(exc), exc
            return False
        return True

    for round_ in range(ROUNDS):
        key = {"pk": _s(f"race-{round_}"), "sk": _s("guard")}
        won = _race(functools.partial(put, key), racers)
        assert len(won) == 1, won
        stored = client.get_item(TableName=ranged, Key=key, ConsistentRead=True)["Item"]
        assert stored["holder"]["S"] == str(won[0])


def test_racing_transactions_have_exactly_one_winner_and_losers_leave_nothing(
    client: Any, tables: tuple[str, str], racers: list[Any]
) -> None:
    ranged, flat = tables

    def take(round_: int, racer_client: Any, racer: int) -> bool:
        own = {"pk": _s(f"plan-{round_}-{racer}"), "sk": _s("PLAN")}
        try:
            racer_client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": ranged, "Item": {**own, "n": _n(racer)}}},
                    {
                        "Put": {
                            "TableName": flat,
                            "Item": {"id": _s(f"guard-{round_}"), "holder": _s(str(racer))},
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            assert _cancelled(exc), exc
            return False
        return True

    for round_ in range(ROUNDS):
        guard = {"id": _s(f"guard-{round_}")}
        won = _race(functools.partial(take, round_), racers)
        assert len(won) == 1, won
        stored = client.get_item(TableName=flat, Key=guard, ConsistentRead=True)["Item"]
        assert stored["holder"]["S"] == str(won[0])
        written = client.scan(
            TableName=ranged,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": _s(f"plan-{round_}-")},
            ConsistentRead=True,
        )["Items"]
        assert [item["pk"]["S"] for item in written] == [f"plan-{round_}-{won[0]}"]


def test_paginated_queries_return_what_a_scan_holds_in_key_order(
    client: Any, tables: tuple[str, str]
) -> None:
    ranged, _ = tables
    for i in range(30):
        client.put_item(
            TableName=ranged,
            Item={
                "pk": _s(f"q{i % 3}"),
                "sk": _s(f"{i:03d}"),
                "g": _s(f"g{i % 2}"),
                "gs": _s(f"{i % 5}"),
            },
        )
    everything = client.scan(TableName=ranged, ConsistentRead=True)["Items"]

    def pages(**kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            response = client.query(TableName=ranged, Limit=4, **kwargs)
            found += response["Items"]
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    for pk in ("q0", "q1", "p1", "none"):
        expected = sorted((i for i in everything if i["pk"]["S"] == pk), key=lambda i: i["sk"]["S"])
        found = pages(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(pk)},
            ConsistentRead=True,
        )
        assert found == expected
    for g in ("g0", "g1", "x"):
        expected = sorted(
            (i for i in everything if i.get("g", {}).get("S") == g),
            key=lambda i: (i["gs"]["S"], i["pk"]["S"], i["sk"]["S"]),
        )
        found = pages(
            IndexName="by-g",
            KeyConditionExpression="g = :g AND gs <= :top",
            ExpressionAttributeValues={":g": _s(g), ":top": _s("3")},
        )
        assert found == [i for i in expected if i["gs"]["S"] <= "3"]
        assert found
