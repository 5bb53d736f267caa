"""The Idempotency-Key record store: one contract, every adapter (memory, SQLite, DynamoDB).

DynamoDB runs against the session's moto server (tests/conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.api.idempotency import (
    PENDING_TIMEOUT,
    BeginOutcome,
    IdempotencyStore,
    MemoryIdempotencyStore,
    SqliteIdempotencyStore,
    StoredResponse,
    open_idempotency_store,
)
from orchestrator.api.settings import default_idempotency_url
from orchestrator.errors import InvalidStoreUrl

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
OK = StoredResponse(
    200, b'{"status":"PAUSED"}', {"content-type": "application/json", "etag": '"5"'}
)


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdempotencyStore]:
    if request.param == "memory":
        records: IdempotencyStore = MemoryIdempotencyStore(ttl=TTL, max_per_tenant=3)
    elif request.param == "sqlite":
        records = SqliteIdempotencyStore(tmp_path / "idem.db", ttl=TTL, max_per_tenant=3)
    else:
        request.getfixturevalue("dynamodb_endpoint")
        records = open_idempotency_store("dynamodb://test-?region=us-east-1", ttl=TTL)
    records.init()
    records.init()  # idempotent
    try:
        yield records
    finally:
        records.close()


def test_first_use_reserves_then_a_retry_replays(store: IdempotencyStore) -> None:
    assert store.begin("t1", "k", "d1", T0).outcome is BeginOutcome.NEW
    assert store.begin("t1", "k", "d1", T0).outcome is BeginOutcome.IN_PROGRESS
    store.finish("t1", "k", "d1", OK, T0)
    replay = store.begin("t1", "k", "d1", T0 + timedelta(minutes=5))
    assert replay.outcome is BeginOutcome.REPLAY
    assert replay.response == OK


def test_another_request_under_the_same_key_is_a_mismatch(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    store.finish("t1", "k", "d1", OK, T0)
    assert store.begin("t1", "k", "d2", T0).outcome is BeginOutcome.MISMATCH


def test_keys_are_per_tenant(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    store.finish("t1", "k", "d1", OK, T0)
    assert store.begin("t2", "k", "d1", T0).outcome is BeginOutcome.NEW


def test_a_released_key_runs_again(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    store.release("t1", "k", "d1")
    assert store.begin("t1", "k", "d1", T0).outcome is BeginOutcome.NEW


def test_a_finished_key_is_not_released(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    store.finish("t1", "k", "d1", OK, T0)
    store.release("t1", "k", "d1")
    assert store.begin("t1", "k", "d1", T0).outcome is BeginOutcome.REPLAY


def test_an_abandoned_reservation_is_taken_over(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    later = T0 + PENDING_TIMEOUT + timedelta(seconds=1)
    assert store.begin("t1", "k", "d1", later).outcome is BeginOutcome.NEW
    assert store.begin("t1", "k", "d1", later).outcome is BeginOutcome.IN_PROGRESS


def test_records_expire_after_the_ttl(store: IdempotencyStore) -> None:
    store.begin("t1", "k", "d1", T0)
    store.finish("t1", "k", "d1", OK, T0)
    assert store.begin("t1", "k", "d2", T0 + TTL + timedelta(seconds=1)).outcome is (
        BeginOutcome.NEW
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_tenant_keeps_at_most_max_records(kind: str, tmp_path: Path) -> None:
    store: IdempotencyStore = (
        MemoryIdempotencyStore(ttl=TTL, max_per_tenant=3)
        if kind == "memory"
        else SqliteIdempotencyStore(tmp_path / "idem.db", ttl=TTL, max_per_tenant=3)
    )
    store.init()
    try:
        for i in range(5):
            store.begin("t1", f"k{i}", "d", T0 + timedelta(seconds=i))
            store.finish("t1", f"k{i}", "d", OK, T0)
        store.begin("t2", "other", "d", T0)
        # the two oldest of t1 were dropped; t2 does not count against t1
        assert store.begin("t1", "k0", "d", T0 + timedelta(seconds=9)).outcome is BeginOutcome.NEW
        assert store.begin("t1", "k4", "d", T0 + timedelta(seconds=9)).outcome is (
            BeginOutcome.REPLAY
        )
        assert store.begin("t2", "other", "d", T0).outcome is BeginOutcome.IN_PROGRESS
    finally:
        store.close()


def test_sqlite_reservations_are_exclusive_across_threads(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "idem.db", ttl=TTL)
    store.init()
    outcomes: list[BeginOutcome] = []
    barrier = threading.Barrier(8)

    def reserve() -> None:
        barrier.wait()
        outcomes.append(store.begin("t1", "same", "d", T0).outcome)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert sorted(o.value for o in outcomes) == ["in_progress"] * 7 + ["new"]


def test_urls_name_the_store() -> None:
    assert (
        default_idempotency_url("sqlite:///data/plans.db") == "sqlite:///data/plans.idempotency.db"
    )
    assert default_idempotency_url("sqlite:////var/x/p.db") == "sqlite:////var/x/p.idempotency.db"
    assert default_idempotency_url("dynamodb://prod-?region=eu-west-1") == (
        "dynamodb://prod-?region=eu-west-1"
    )
    assert default_idempotency_url("memory://") == "memory://"
    assert isinstance(open_idempotency_store("memory://"), MemoryIdempotencyStore)
    with pytest.raises(InvalidStoreUrl):
        open_idempotency_store("redis://x")
    with pytest.raises(InvalidStoreUrl):
        open_idempotency_store("sqlite://host/x.db")


def test_the_dynamodb_table_is_the_one_its_definition_describes(dynamodb_endpoint: str) -> None:
    from orchestrator.api.idempotency_dynamodb import DynamoDBIdempotencyStore, table_definition

    store = DynamoDBIdempotencyStore("def-", region="us-east-1")
    store.init()
    try:
        described = store._client.describe_table(TableName="def-api-idempotency")["Table"]
        definition = table_definition("def-")
        assert described["KeySchema"] == definition["KeySchema"]
        assert described["AttributeDefinitions"] == definition["AttributeDefinitions"]
        ttl = store._client.describe_time_to_live(TableName="def-api-idempotency")
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    finally:
        store.close()


def test_settings_can_skip_creating_the_table() -> None:
    from orchestrator.api.settings import ApiSettings

    env = {"PLAN_API_AUTH": "gateway", "PLAN_API_IDEMPOTENCY_INIT": "0"}
    assert ApiSettings.from_env(env).idempotency_init is False
    assert ApiSettings.from_env({"PLAN_API_AUTH": "gateway"}).idempotency_init is True
