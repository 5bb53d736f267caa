"""Races between real processes: the conflict invariant and optimistic concurrency.

Eight spawned workers try to activate eight different APPROVED plans of the
same (tenant, account, plan_type) at the same instant (a barrier releases them
together), 50 rounds per backend: exactly one wins each round, the other seven
get ``GuardConflict`` naming the winner and record ``activation_rejected`` in
their ledger. Then four workers increment one field by read-modify-write with
retry on ``VersionConflict``: no increment is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.adapters.sqlite import SqliteStore
from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.main import main
from orchestrator.ports import ManagedStore
from support.plans import created, make_plan
from support.store_workers import WorkerPool

pytestmark = pytest.mark.slow

ROUNDS = 50
WORKERS = 8


@pytest.fixture(scope="module")
def pool(moto_server: str) -> Iterator[WorkerPool]:
    """Workers spawned once for the module, after the moto endpoint is in the environment."""
    workers = WorkerPool(WORKERS)
    try:
        yield workers
    finally:
        workers.close()


def _check_round(
    store: ManagedStore, account: str, results: list[tuple[Any, ...]], *, full_check: bool
) -> None:
    winners = [r for r in results if r[1] == "won"]
    assert len(winners) == 1, results
    winner = winners[0][2]
    rejected = [r for r in results if r[1] == "rejected"]
    assert len(rejected) == WORKERS - 1
    for _, _, _, holder, seq, reason in rejected:
        assert holder == winner
        assert seq == 2
        assert winner in reason
    assert store.active_plan_for("acme", account, "RENEWAL_DEFENSE") == winner
    listed = store.list_plans("acme", account_id=account, limit=WORKERS).items
    assert sorted((p.status, p.version) for p in listed) == [("ACTIVE", 2)] + [("APPROVED", 1)] * (
        WORKERS - 1
    )
    if full_check:
        for _, _, plan_id, *_ in results:
            head, entries = store.ledger_snapshot("acme", plan_id)
            assert verify_chain(entries, head=head) == []
            events = [e.event for e in entries]
            if plan_id == winner:
                assert events == [LedgerEvent.CREATED, LedgerEvent.ACTIVATED]
            else:
                assert events == [LedgerEvent.CREATED, LedgerEvent.ACTIVATION_REJECTED]
                assert entries[1].evidence == {"holder_plan_id": winner}


def _activations(url: str, account: str) -> list[dict[str, Any]]:
    task = {"kind": "activate", "store": url, "tenant_id": "acme", "account_id": account}
    return [task] * WORKERS


def _sqlite_url(path: Path) -> str:
    # Races are about locking, not about surviving power loss: skip the fsync per
    # commit (synchronous=full, the default, is what the kill tests run with).
    return f"sqlite:///{path}?synchronous=normal"


def test_activation_race_sqlite(pool: WorkerPool, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "race.db"
    store = SqliteStore(path, synchronous="NORMAL")
    store.init()
    try:
        for r in range(ROUNDS):
            results = pool.run(_activations(_sqlite_url(path), f"acct-{r}"))
            _check_round(store, f"acct-{r}", results, full_check=True)
    finally:
        store.close()
    assert main(["ledger", "verify", "--store", f"sqlite:///{path}"]) == 0
    assert f"{ROUNDS * WORKERS} plans" in capsys.readouterr().out


def test_activation_race_dynamodb(pool: WorkerPool, dynamodb_endpoint: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    base = f"race{uuid.uuid4().hex[:6]}"

    def tables(r: int) -> DynamoDBStore:
        # fresh small tables each round: moto copies whole tables per transaction
        store = DynamoDBStore(f"{base}-{r}-", client=client)
        store.init()
        return store

    try:
        store = tables(0)
        for r in range(ROUNDS):
            pool.submit(_activations(f"dynamodb://{store.prefix}", "acct-1"))
            following = tables(r + 1) if r + 1 < ROUNDS else None  # while they race
            results = pool.collect(WORKERS)
            _check_round(store, "acct-1", results, full_check=r % 25 == 0 or r == ROUNDS - 1)
            if following is not None:
                store = following
    finally:
        client.close()


def _lost_update_check(store: ManagedStore, url: str, pool: WorkerPool) -> None:
    per_worker = 8
    plan = make_plan("acme")
    store.create_plan(plan, created(plan))
    task = {"kind": "increment", "store": url, "tenant_id": "acme", "plan_id": plan.plan_id}
    results = pool.run([{**task, "count": per_worker}] * 4)
    total = 4 * per_worker
    final = store.get_plan("acme", plan.plan_id)
    assert final.steps[0].attempts == total
    assert final.version == 1 + total
    head, entries = store.ledger_snapshot("acme", plan.plan_id)
    assert len(entries) == 1 + total
    assert verify_chain(entries, head=head) == []
    assert sum(r[3] for r in results) >= 0  # conflicts happened or not; nothing was lost


def test_no_lost_update_sqlite(pool: WorkerPool, tmp_path: Path) -> None:
    path = tmp_path / "counter.db"
    store = SqliteStore(path, synchronous="NORMAL")
    store.init()
    try:
        _lost_update_check(store, _sqlite_url(path), pool)
    finally:
        store.close()


def test_no_lost_update_dynamodb(pool: WorkerPool, dynamodb_endpoint: str) -> None:
    prefix = f"count{uuid.uuid4().hex[:6]}-"
    store = DynamoDBStore(prefix, region="us-east-1")
    store.init()
    try:
        _lost_update_check(store, f"dynamodb://{prefix}", pool)
    finally:
        store.close()
