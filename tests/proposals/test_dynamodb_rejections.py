"""The DynamoDB rejection log: the ledger table, one hash chain per tenant, conditional puts only.

Runs against the session's moto server (tests/conftest.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.adapters.dynamodb_rejections import DynamoDBRejectionLog, rejection_pk
from orchestrator.errors import StoreNotInitialized
from orchestrator.ledger import GENESIS_HASH, LedgerDraft, LedgerEvent
from orchestrator.proposal_log import JsonlRejectionLog, rejection_log_for

PREFIX = "rej-"
URL = f"dynamodb://{PREFIX}?region=us-east-1"
LEDGER = f"{PREFIX}plan-ledger"


def _draft(reason: str = "no") -> LedgerDraft:
    return LedgerDraft(
        time="2025-03-01T09:00:00Z",  # type: ignore[arg-type]
        actor="proposer:rules",
        event=LedgerEvent.PROPOSAL_REJECTED,
        reason=reason,
    )


class _Recording:
    """A boto3 client that records the operations made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(**kwargs)

        return call


@pytest.fixture
def client(dynamodb_endpoint: str) -> Iterator[Any]:
    store = DynamoDBStore(PREFIX, region="us-east-1")
    store.init()  # the ledger table is the plan store's
    store.close()
    raw = boto3.client("dynamodb", region_name="us-east-1")
    try:
        yield raw
    finally:
        raw.close()


@pytest.fixture
def log(client: Any) -> DynamoDBRejectionLog:
    found = rejection_log_for(URL)
    assert isinstance(found, DynamoDBRejectionLog)
    return found


def test_records_are_appended_and_listed_per_tenant(log: DynamoDBRejectionLog) -> None:
    a = log.append(_draft("a"), tenant_id="northwind", account_id="acme", proposal_id="p1")
    b = log.append(_draft("b"), tenant_id="southwind", account_id="acme", proposal_id="p2")
    c = log.append(_draft("c"), tenant_id="northwind", account_id="globex", proposal_id="p3")
    assert (a.seq, b.seq, c.seq) == (1, 1, 2)  # one chain per tenant
    assert a.prev_hash == GENESIS_HASH == b.prev_hash and c.prev_hash == a.hash
    assert log.records("northwind") == [a, c]
    assert log.records("northwind", limit=1) == [c]
    assert log.records("northwind", limit=0) == []
    assert DynamoDBRejectionLog(PREFIX, region="us-east-1").records("southwind") == [b]
    assert log.records("eastwind") == []
    assert log.verify("northwind") == [] and log.verify("southwind") == []


def test_tenants_never_see_each_other_nor_the_plan_ledger(
    log: DynamoDBRejectionLog, client: Any
) -> None:
    log.append(_draft(), tenant_id="t1", account_id="a", proposal_id="p1")
    log.append(_draft(), tenant_id="t1", account_id="a", proposal_id="p2")
    log.append(_draft(), tenant_id="t2", account_id="a", proposal_id="p3")
    assert [r.proposal_id for r in log.records("t1")] == ["p1", "p2"]
    assert [r.proposal_id for r in log.records("t2")] == ["p3"]
    items = client.scan(TableName=LEDGER)["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["REJ#t1", "REJ#t1", "REJ#t2"]
    assert rejection_pk("t1") == "REJ#t1"  # a plan's ledger partition is `P#{tenant}#{plan}`


def test_an_edited_record_is_detected(log: DynamoDBRejectionLog, client: Any) -> None:
    for n in range(3):
        log.append(_draft(str(n)), tenant_id="t", account_id="a", proposal_id=f"p{n}")
    assert log.verify("t") == []
    key = {"pk": {"S": "REJ#t"}, "seq": {"N": "2"}}
    item = client.get_item(TableName=LEDGER, Key=key)["Item"]
    edited = json.loads(item["record"]["S"]) | {"reason": "edited"}
    item["record"] = {"S": json.dumps(edited)}
    client.put_item(TableName=LEDGER, Item=item)  # as someone with more rights than the app
    problems = log.verify("t")
    assert any("record 2" in p and "edited" in p for p in problems), problems
    client.delete_item(TableName=LEDGER, Key=key)
    assert any("deleted" in p for p in log.verify("t"))


def test_only_conditional_puts_and_queries_are_made(client: Any) -> None:
    recording = _Recording(client)
    log = DynamoDBRejectionLog(PREFIX, client=recording)
    log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p1")
    log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p2")
    log.records("t")
    log.verify("t")
    assert {name for name, _ in recording.calls} == {"query", "put_item"}
    puts = [kwargs for name, kwargs in recording.calls if name == "put_item"]
    assert all(p["ConditionExpression"] == "attribute_not_exists(pk)" for p in puts)
    assert all(p["TableName"] == LEDGER for _, p in recording.calls)
    newest_reads = [k for n, k in recording.calls if n == "query" and k.get("Limit") == 1]
    assert newest_reads and all(
        k["ConsistentRead"] and k["ScanIndexForward"] is False for k in newest_reads
    )


class _StaleOnce(_Recording):
    """The first read of the newest record misses it, as if another writer had just put it."""

    stale = True

    def query(self, **kwargs: Any) -> Any:
        self.calls.append(("query", kwargs))
        if kwargs.get("Limit") == 1 and self.stale:
            self.stale = False
            return {"Items": []}
        return self._client.query(**kwargs)


def test_a_taken_seq_is_retried(log: DynamoDBRejectionLog, client: Any) -> None:
    first = log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p1")
    racing = _StaleOnce(client)
    second = DynamoDBRejectionLog(PREFIX, client=racing).append(
        _draft(), tenant_id="t", account_id="a", proposal_id="p2"
    )
    assert second.seq == 2 and second.prev_hash == first.hash
    assert [name for name, _ in racing.calls].count("put_item") == 2  # seq 1 was taken
    assert [r.proposal_id for r in log.records("t")] == ["p1", "p2"]
    assert log.verify("t") == []


def test_concurrent_appends_all_land_with_distinct_seqs(client: Any) -> None:
    per_thread = 4
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        own = DynamoDBRejectionLog(PREFIX, region="us-east-1")
        try:
            start.wait()
            for n in range(per_thread):
                record = own.append(
                    _draft(), tenant_id="t", account_id="a", proposal_id=f"{name}-{n}"
                )
                with lock:
                    seqs.append(record.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(seqs) == list(range(1, 2 * per_thread + 1))
    log = DynamoDBRejectionLog(PREFIX, region="us-east-1")
    assert len(log.records("t")) == 2 * per_thread
    assert log.verify("t") == []


def test_a_missing_table_means_the_store_is_not_initialized(dynamodb_endpoint: str) -> None:
    log = DynamoDBRejectionLog("nothing-here-", region="us-east-1")
    with pytest.raises(StoreNotInitialized, match="nothing-here-plan-ledger"):
        log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p1")


def test_a_dynamodb_store_url_picks_the_dynamodb_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANPOLICY_REJECTION_LOG", raising=False)
    log = rejection_log_for("dynamodb://prod-?region=eu-west-1")
    assert isinstance(log, DynamoDBRejectionLog) and log.table == "prod-plan-ledger"
    assert isinstance(rejection_log_for("dynamodb://prod-", "x.jsonl"), JsonlRejectionLog)
    monkeypatch.setenv("PLANPOLICY_REJECTION_LOG", "/tmp/elsewhere.jsonl")
    log = rejection_log_for("dynamodb://prod-?region=eu-west-1")
    assert isinstance(log, JsonlRejectionLog) and str(log.path) == "/tmp/elsewhere.jsonl"
