"""No caller can change a store by mutating what it passed in or got back (every adapter).

The memory store keeps decoded records instead of JSON, so this is what keeps
it honest: plans, attempts and ledger entries it hands out are detached copies,
and what it keeps is never an object a caller holds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.adapters.memory import detached
from orchestrator.errors import InvalidUpdate
from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.ports import ManagedStore
from orchestrator.records import AttemptStatus, StepAttempt
from planpolicy.plan import PlanStatus, PlanStep, RevenuePlanV1, StepStatus
from support.plans import T0, created, draft, make_plan

TTL = timedelta(minutes=5)


def _vandalize_plan(plan: RevenuePlanV1) -> None:
    """Change everything mutable a plan holds, in place."""
    plan.status = PlanStatus.ABORTED.value
    plan.next_due_at = T0
    plan.steps[0].status = StepStatus.SKIPPED
    plan.steps[0].parameters["injected"] = "yes"
    plan.steps.append(PlanStep(action_type="INJECTED"))
    plan.steps.reverse()


def _snapshot(store: ManagedStore, plan: RevenuePlanV1) -> tuple[Any, ...]:
    stored = store.get_plan(plan.tenant_id, plan.plan_id)
    head, entries = store.ledger_snapshot(plan.tenant_id, plan.plan_id)
    return (
        stored.model_dump(mode="json"),
        head,
        [e.model_dump(mode="json") for e in entries],
        [a.model_dump(mode="json") for a in store.list_attempts(plan.tenant_id, plan.plan_id)],
    )


def _plan_with_parameters() -> RevenuePlanV1:
    plan = make_plan()
    steps = [plan.steps[0].model_copy(update={"parameters": {"channel": "email"}}), *plan.steps[1:]]
    return plan.model_copy(update={"steps": steps})


def test_plans_handed_out_are_copies(store: ManagedStore) -> None:
    plan = _plan_with_parameters()
    returned = store.create_plan(plan, created(plan))
    before = _snapshot(store, plan)
    for copy in (
        returned,
        store.get_plan(plan.tenant_id, plan.plan_id),
        store.list_plans(plan.tenant_id).items[0],
    ):
        _vandalize_plan(copy)
        assert _snapshot(store, plan) == before
    fresh = store.get_plan(plan.tenant_id, plan.plan_id)
    updated = store.update_plan(
        fresh.model_copy(update={"objective": "changed"}),
        expected_version=1,
        entries=[draft(LedgerEvent.UPDATED)],
    )
    after = _snapshot(store, plan)
    _vandalize_plan(updated)
    assert _snapshot(store, plan) == after
    assert store.get_plan(plan.tenant_id, plan.plan_id).steps[0].parameters == {"channel": "email"}


def test_what_a_caller_passes_in_is_not_kept(store: ManagedStore) -> None:
    plan = _plan_with_parameters()
    entries = created(plan)
    store.create_plan(plan, entries)
    before = _snapshot(store, plan)
    _vandalize_plan(plan)
    entries[0].evidence["injected"] = True
    entries[0].document_versions["Injected/x"] = 9
    assert _snapshot(store, plan) == before

    current = store.get_plan(plan.tenant_id, plan.plan_id)
    fence = store.acquire_lease(plan.tenant_id, plan.plan_id, "w", T0, TTL)
    assert fence is not None
    attempt = StepAttempt(
        tenant_id=plan.tenant_id,
        plan_id=plan.plan_id,
        step_id=current.steps[0].step_id,
        attempt=1,
        action_type=current.steps[0].action_type,
        created_at=T0,
        updated_at=T0,
        outcome={"detail": {"n": 1}},
    )
    assert store.put_attempt(attempt, fence)
    note = draft(LedgerEvent.NOTE, evidence={"nested": {"list": [1, 2]}})
    store.update_plan(
        current.model_copy(update={"objective": "changed"}),
        expected_version=current.version,
        entries=[note],
        fence=fence,
        attempts=[attempt.model_copy(update={"status": AttemptStatus.SUCCEEDED})],
    )
    after = _snapshot(store, plan)
    attempt.outcome["detail"]["n"] = 2  # type: ignore[index]
    note.evidence["nested"]["list"].append(3)  # type: ignore[index,union-attr]
    current.steps.clear()
    assert _snapshot(store, plan) == after


def test_attempts_and_ledger_entries_handed_out_are_copies(store: ManagedStore) -> None:
    plan = store.create_plan(make_plan(), created(make_plan()))
    fence = store.acquire_lease(plan.tenant_id, plan.plan_id, "w", T0, TTL)
    assert fence is not None
    attempt = StepAttempt(
        tenant_id=plan.tenant_id,
        plan_id=plan.plan_id,
        step_id=plan.steps[0].step_id,
        attempt=1,
        created_at=T0,
        updated_at=T0,
        outcome={"detail": {"n": 1}},
    )
    store.put_attempt(attempt, fence)
    appended = store.append_ledger(
        plan.tenant_id, plan.plan_id, [draft(evidence={"nested": {"n": 1}})], fence=fence
    )
    before = _snapshot(store, plan)
    got = store.get_attempt(plan.tenant_id, plan.plan_id, plan.steps[0].step_id, 1)
    got.outcome["detail"]["n"] = 5  # type: ignore[index]
    store.list_attempts(plan.tenant_id, plan.plan_id)[0].outcome.clear()
    updated = store.update_attempt(
        attempt.model_copy(update={"status": AttemptStatus.FAILED}), fence
    )
    before = _snapshot(store, plan)
    updated.outcome.clear()
    appended[0].evidence["nested"]["n"] = 2  # type: ignore[index]
    for entry in store.ledger(plan.tenant_id, plan.plan_id):
        entry.evidence.clear()
        entry.document_versions.clear()
    _head, entries = store.ledger_snapshot(plan.tenant_id, plan.plan_id)
    entries[0].evidence["x"] = 1
    assert _snapshot(store, plan) == before
    head, entries = store.ledger_snapshot(plan.tenant_id, plan.plan_id)
    assert verify_chain(entries, head=head) == []


def test_an_invalid_plan_is_still_refused(store: ManagedStore) -> None:
    plan = store.create_plan(make_plan(), created(make_plan()))
    bad = plan.model_copy(update={"next_due_at": "not a time", "status": "lower case"})
    with pytest.raises(InvalidUpdate):
        store.update_plan(bad, expected_version=plan.version)
    assert store.get_plan(plan.tenant_id, plan.plan_id) == plan


def test_detached_copies_share_no_mutable_value() -> None:
    plan = _plan_with_parameters()
    copy = detached(plan)
    assert copy == plan
    assert copy is not plan
    assert copy.steps is not plan.steps
    for mine, theirs in zip(copy.steps, plan.steps, strict=True):
        assert mine is not theirs
        assert mine.parameters is not theirs.parameters
    assert copy.model_fields_set == plan.model_fields_set
    assert copy.model_fields_set is not plan.model_fields_set
