"""Races: several worker processes tick the same store at the same instants.

200 FOLLOW_UP plans on each of SQLite and DynamoDB (RACE_SQLITE_PLANS and
RACE_DYNAMODB_PLANS change that), some accounts with two plans so that
activations conflict, run to the end while 5 spawned workers tick every round
together. The reference execution service (a real HTTP server, deduplicating by
key) fails, times out, answers late or refuses some calls, reproducibly by key.
Then:

- every step key the ledgers dispatched reached the service exactly once
  (effective executions) and the service executed no key the ledgers lack;
- each key has exactly one ``step_intent`` and one ``step_outcome`` entry, and
  a step's attempts are 1..n with only the last allowed to succeed;
- every plan ended (COMPLETED), or lost its activation race and is parked
  APPROVED with the rejection ledgered; exactly one plan per account won;
- every ledger verifies against the head its plan records.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.ports import ManagedStore
from orchestrator.wiring import Orchestrator, build
from planpolicy import PlanStatus, StepStatus
from support.exec_service import ExecService
from support.tick_workers import TickRace
from support.world import AE, MANAGER, POLICY_PATHS, T0, make_plan

pytestmark = pytest.mark.slow

SCRIPT = {
    "fail_rate": 0.3,
    "timeout_rate": 0.03,
    "pending_rate": 0.05,
    "pending_polls": 1,
    "timeout_seconds": 0.4,
    "unavailable_rate": 0.02,
}
ROUNDS = [T0 + timedelta(minutes=30 * r) for r in range(10)]


@pytest.fixture
def exec_service(tmp_path: Path) -> Iterator[ExecService]:
    with ExecService(tmp_path / "exec.db", script=SCRIPT) as service:
        yield service


def _accounts(directory: Path, count: int) -> list[str]:
    names = [f"acct-{i:04d}" for i in range(count)]
    for name in names:
        facts = {
            "account": {
                "account_id": name,
                "renewal_date": (T0 + timedelta(days=60)).isoformat(),
                "renewal": {"status": "OPEN"},
            },
            "signals": {"open_p1_tickets": 0},
        }
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(facts), encoding="utf-8")
    return names


def _seed(wired: Orchestrator, accounts: list[str], doubles: int) -> list[str]:
    """An approved FOLLOW_UP plan per account; the first ``doubles`` accounts get two."""
    ids = []
    for i, account in enumerate(accounts):
        for _ in range(2 if i < doubles else 1):
            plan = wired.service.create(make_plan(account, plan_type="FOLLOW_UP"), AE)
            ids.append(wired.service.approve(plan.tenant_id, plan.plan_id, MANAGER).plan_id)
    return ids


def _race(
    store_url: str, tmp_path: Path, service: ExecService, *, plans: int, doubles: int, workers: int
) -> None:
    accounts_dir = tmp_path / "accounts"
    accounts_dir.mkdir()
    accounts = _accounts(accounts_dir, plans - doubles)
    with build(
        store_url=store_url, policies=POLICY_PATHS, accounts=str(accounts_dir), now=T0
    ) as wired:
        wired.store.init()
        plan_ids = _seed(wired, accounts, doubles)
        assert len(plan_ids) == plans
        totals = TickRace(
            workers,
            {
                "store": store_url,
                "policies": POLICY_PATHS,
                "accounts": str(accounts_dir),
                "executor": service.url,
                "timeout": 0.2,
            },
            ROUNDS,
        ).run()
        counts = Counter[str]()
        for worker_totals in totals.values():
            counts.update(worker_totals)
        assert counts["errors"] == 0, totals
        print(f"\nrace: {totals}")
        parked = _check(wired.store, plan_ids, service.book.stats()["intents"])
        assert counts["activated"] + parked == plans
        assert 0 < parked <= doubles


def _check(store: ManagedStore, plan_ids: list[str], intents: dict[str, Any]) -> int:
    """Check every plan, ledger and key; return the number of parked (rejected) plans."""
    ledger_keys: set[str] = set()
    runs: dict[str, list[tuple[Any, Any]]] = {}
    parked = 0
    for plan_id in plan_ids:
        plan = store.get_plan("acme-corp", plan_id)
        head, entries = store.ledger_snapshot(plan.tenant_id, plan_id)
        assert verify_chain(entries, head=head) == [], plan_id
        if plan.status == PlanStatus.APPROVED:  # lost its activation race: parked, not queued
            parked += 1
            rejection = entries[-1]
            assert rejection.event == LedgerEvent.ACTIVATION_REJECTED
            holder = rejection.evidence["reasons"][0]["details"]["holder"]  # type: ignore[index,call-overload]
            assert store.get_plan("acme-corp", str(holder)).account_id == plan.account_id
            assert plan.next_due_at == plan.expires_at
            continue
        assert (plan.status, plan.completion_reason) == ("COMPLETED", "all_steps_done"), plan_id
        runs.setdefault(plan.account_id, []).append((plan.activated_at, plan.ended_at))
        intents_by_key = Counter(
            str(e.evidence["idempotency_key"])
            for e in entries
            if e.event == LedgerEvent.STEP_INTENT
        )
        outcomes_by_key = Counter(
            str(e.evidence["idempotency_key"])
            for e in entries
            if e.event == LedgerEvent.STEP_OUTCOME
        )
        assert set(intents_by_key.values()) == {1}, plan_id  # one intent per key
        assert outcomes_by_key == intents_by_key, plan_id  # one outcome per key, none lost
        ledger_keys |= set(intents_by_key)
        for step in plan.steps:
            keys = [f"{plan_id}:{step.step_id}:{n}" for n in range(1, step.attempts + 1)]
            assert set(keys) <= set(intents_by_key), (plan_id, step.action_type)
            statuses = [intents[key]["status"] for key in keys]
            if step.status == StepStatus.SUCCEEDED:
                assert statuses == ["FAILED"] * (len(keys) - 1) + ["SUCCEEDED"]
            else:
                assert step.status == StepStatus.SKIPPED and statuses == ["FAILED"] * 3
    for spans in runs.values():  # one ACTIVE plan per account at a time: runs never overlap
        spans.sort()
        for (_, ended), (started, _) in itertools.pairwise(spans):
            assert started >= ended
    assert set(intents) == ledger_keys  # the service executed exactly the ledgered keys
    assert {record["executions"] for record in intents.values()} == {1}
    # the script made the service misbehave; the protocol reconciled every case
    outcomes = Counter(record["outcome"] for record in intents.values())
    assert outcomes["fail"]
    return parked


def test_workers_racing_on_sqlite(tmp_path: Path, exec_service: ExecService) -> None:
    plans = int(os.environ.get("RACE_SQLITE_PLANS", "200"))
    _race(
        f"sqlite:///{tmp_path / 'plans.db'}?synchronous=normal",
        tmp_path,
        exec_service,
        plans=plans,
        doubles=plans // 12,
        workers=5,
    )


def test_workers_racing_on_dynamodb(
    tmp_path: Path, exec_service: ExecService, dynamodb_endpoint: str
) -> None:
    # moto serves one request at a time (tests/support/serial_moto.py), so the race
    # takes as long as the server's work: ~6,800 requests for 200 plans. It used to
    # copy every table a transaction names (cost growing with the ledger: 100 plans took
    # ~3 minutes); serial_moto now keeps an undo log of the named items instead, and
    # the adapter's writes after a read are one request each: 200 plans take about a
    # minute here. RACE_DYNAMODB_PLANS=1000 runs a long race.
    plans = int(os.environ.get("RACE_DYNAMODB_PLANS", "200"))
    prefix = f"race{uuid.uuid4().hex[:8]}-"
    _race(
        f"dynamodb://{prefix}?region=us-east-1",
        tmp_path,
        exec_service,
        plans=plans,
        doubles=max(plans // 8, 2),
        workers=5,
    )
