"""Crash injection: a worker is killed (SIGKILL) at each point of the step protocol.

A real process (tests/support/crash_tick.py, wired like ``plan-orchestrator
tick``) runs the first step of a FOLLOW_UP plan and kills itself at the chosen
point; then ``plan-orchestrator tick`` runs once the dead worker's lease has
run out. No step is lost (the plan completes), no key executes twice at the
deduplicating execution service, and the ledger says what happened.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.main import main
from orchestrator.records import AttemptStatus
from orchestrator.scheduler import CRASH_POINTS
from orchestrator.wiring import build
from planpolicy import StepStatus
from support.exec_service import ExecService
from support.world import AE, MANAGER, POLICY_PATHS, T0, make_plan, runtime

pytestmark = pytest.mark.slow

SUPPORT = Path(__file__).resolve().parents[1] / "support"

#: What the recovering worker's ledger entries say about the first step, per crash point.
EXPLANATION = {
    "after_attempt_record": "its attempt record was left by an interrupted worker",
    "after_intent": "re-submitted with the same key",
    "after_dispatch": "looked up by key",
    "before_outcome_write": "looked up by key",
}


@pytest.fixture
def exec_service(tmp_path: Path) -> Iterator[ExecService]:
    with ExecService(tmp_path / "exec.db") as service:
        yield service


def _store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'plans.db'}"
    request.getfixturevalue("dynamodb_endpoint")
    return f"dynamodb://crash{uuid.uuid4().hex[:8]}-?region=us-east-1"


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_worker_killed_mid_protocol_loses_and_duplicates_nothing(
    point: str,
    backend: str,
    tmp_path: Path,
    exec_service: ExecService,
    request: pytest.FixtureRequest,
) -> None:
    store_url = _store_url(backend, tmp_path, request)
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    facts = {"account": {"account_id": "acct-1", "renewal": {"status": "OPEN"}}}
    (accounts / "acct-1.yaml").write_text(yaml.safe_dump(facts), encoding="utf-8")
    with build(store_url=store_url, runtime=runtime(), accounts=str(accounts), now=T0) as wired:
        wired.store.init()
        plan = wired.service.create(make_plan("acct-1", plan_type="FOLLOW_UP"), AE)
        plan_id = wired.service.approve(plan.tenant_id, plan.plan_id, MANAGER).plan_id
    tenant = plan.tenant_id
    policies = [arg for path in POLICY_PATHS for arg in ("--policies", path)]
    common = ["--store", store_url, "--executor", exec_service.url, "--accounts", str(accounts)]

    crashed = subprocess.run(
        [
            sys.executable,
            str(SUPPORT / "crash_tick.py"),
            "--crash-at",
            point,
            "--now",
            T0.isoformat(),
            *common,
            *policies,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    with build(store_url=store_url, runtime=runtime(), accounts=str(accounts), now=T0) as wired:
        first = wired.store.get_plan(tenant, plan_id).steps[0]
        attempts = wired.store.list_attempts(tenant, plan_id)
        assert [(a.attempt, a.status) for a in attempts] == [(1, AttemptStatus.STARTED)]
        intended = first.status == StepStatus.DISPATCHED
        assert intended == (point != "after_attempt_record")
        executed = set(exec_service.book.stats()["intents"])
        assert bool(executed) == (point in ("after_dispatch", "before_outcome_write"))

    later = (T0 + timedelta(minutes=10)).isoformat()  # past the dead worker's lease
    assert main(["tick", "--now", later, *common, *policies]) == 0

    with build(store_url=store_url, runtime=runtime(), accounts=str(accounts), now=T0) as wired:
        recovered = wired.store.get_plan(tenant, plan_id)
        head, entries = wired.store.ledger_snapshot(tenant, plan_id)
    assert (recovered.status, recovered.completion_reason) == ("COMPLETED", "all_steps_done")
    assert verify_chain(entries, head=head) == []
    intents = exec_service.book.stats()["intents"]
    keys = {f"{plan_id}:{step.step_id}:1" for step in recovered.steps}
    assert set(intents) == keys  # no step lost, nothing else executed
    assert {record["executions"] for record in intents.values()} == {1}
    dispatched = Counter(
        str(e.evidence["idempotency_key"]) for e in entries if e.event == LedgerEvent.STEP_INTENT
    )
    outcomes = Counter(
        str(e.evidence["idempotency_key"]) for e in entries if e.event == LedgerEvent.STEP_OUTCOME
    )
    assert dispatched == outcomes == Counter(dict.fromkeys(keys, 1))
    first_key = f"{plan_id}:{recovered.steps[0].step_id}:1"
    about_first = [
        e for e in entries if e.evidence.get("idempotency_key") == first_key or e.attempt == 1
    ]
    workers = {str(e.evidence.get("worker")) for e in about_first if "worker" in e.evidence}
    assert ("doomed-worker" in workers) == intended  # the dead worker's intent stays on record
    assert any(EXPLANATION[point] in e.reason for e in about_first), [e.reason for e in entries]
