"""A process killed in the middle of a write leaves no half-applied state."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.adapters.sqlite import TEST_PAUSE_ENV
from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.main import main
from orchestrator.ports import ManagedStore
from orchestrator.stores import open_store
from planpolicy.plan import PlanStatus
from support.plans import created, make_plan

pytestmark = pytest.mark.slow

CHILD = Path(__file__).parents[1] / "support" / "store_child.py"


def _spawn(verb: str, url: str, plan_id: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), verb, url, "acme", plan_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _wait_for(stream: object, marker: str, proc: subprocess.Popen[str]) -> None:
    line = stream.readline()  # type: ignore[attr-defined]
    if marker not in line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"child did not reach `{marker}`: {line!r}\n{err}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _assert_consistent(store: ManagedStore, plan_id: str) -> None:
    """Plan version and ledger agree, and the chain verifies."""
    plan = store.get_plan("acme", plan_id)
    head, entries = store.ledger_snapshot("acme", plan_id)
    assert verify_chain(entries, head=head) == []
    assert head.seq == len(entries)
    # every update wrote exactly one entry in the same operation
    assert len(entries) == plan.version
    assert entries[-1].plan_version == plan.version


def test_sqlite_kill_inside_the_transaction_applies_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    store = open_store(url)
    store.init()
    try:
        plan = make_plan(status=PlanStatus.APPROVED)
        store.create_plan(plan, created(plan))
        child = _spawn("activate", url, plan.plan_id, **{TEST_PAUSE_ENV: "60"})
        assert child.stderr is not None
        _wait_for(child.stderr, "paused inside the transaction", child)
        _kill(child)  # after the plan UPDATE and the guard INSERT, before the ledger INSERT

        after = store.get_plan("acme", plan.plan_id)
        assert (after.status, after.version) == ("APPROVED", 1)
        assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None
        assert [e.event for e in store.ledger("acme", plan.plan_id)] == [LedgerEvent.CREATED]
        _assert_consistent(store, plan.plan_id)
        # the killed writer's lock is gone: the same activation now succeeds
        done = _spawn("activate", url, plan.plan_id)
        _, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        assert store.get_plan("acme", plan.plan_id).status == "ACTIVE"
        _assert_consistent(store, plan.plan_id)
    finally:
        store.close()
    assert main(["ledger", "verify", "--store", url]) == 0


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_kill_at_random_points_of_a_write_stream(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'plans.db'}"
    else:
        request.getfixturevalue("dynamodb_endpoint")
        url = f"dynamodb://kill{uuid.uuid4().hex[:6]}-?region=us-east-1"
    store = open_store(url)
    store.init()
    rng = random.Random(4)
    try:
        plan = make_plan()
        store.create_plan(plan, created(plan))
        for _ in range(2):
            child = _spawn("update-loop", url, plan.plan_id)
            assert child.stdout is not None
            _wait_for(child.stdout, "ready", child)
            time.sleep(rng.uniform(0.0, 0.15))
            _kill(child)
            _assert_consistent(store, plan.plan_id)
        assert store.get_plan("acme", plan.plan_id).version >= 3
    finally:
        store.close()
    assert main(["ledger", "verify", "--store", url]) == 0


def test_dynamodb_client_killed_before_its_transaction_is_sent(dynamodb_endpoint: str) -> None:
    url = f"dynamodb://kill{uuid.uuid4().hex[:6]}-?region=us-east-1"
    store = open_store(url)
    store.init()
    try:
        plan = make_plan(status=PlanStatus.APPROVED)
        store.create_plan(plan, created(plan))
        child = _spawn("pause-before-send", url, plan.plan_id)
        assert child.stdout is not None
        _wait_for(child.stdout, "sending", child)  # read done, transaction built
        _kill(child)
        after = store.get_plan("acme", plan.plan_id)
        assert (after.status, after.version) == ("APPROVED", 1)
        assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None
        _assert_consistent(store, plan.plan_id)
    finally:
        store.close()
