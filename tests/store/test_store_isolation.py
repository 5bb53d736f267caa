"""No caller can change a store by mutating what it passed in or got back (every adapter).

The memory store keeps decoded records instead of JSON, so this is what keeps
it honest. It hands out the plans it keeps, shared between readers, which is
safe because they are sealed: plans and steps are frozen records and a stored
plan's step list and parameters refuse changes in place
(``planpolicy.plan.read_only``). Attempts and ledger entries it hands out are
copies, and what it keeps is never an object a caller holds.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.adapters.memory import MemoryStore, detached
from orchestrator.errors import InvalidUpdate
from orchestrator.ledger import LedgerEvent, verify_chain
from orchestrator.ports import ManagedStore
from orchestrator.records import AttemptStatus, StepAttempt
from planpolicy.plan import (
    PlanStatus,
    PlanStep,
    ReadOnlyDict,
    ReadOnlyList,
    RevenuePlanV1,
    StepStatus,
    replaced,
)
from support.plans import T0, created, draft, make_plan

TTL = timedelta(minutes=5)


def _vandalism(plan: RevenuePlanV1) -> list[Callable[[], object]]:
    """Every way to change in place what a plan holds (fields, its steps, their parameters)."""
    step = plan.steps[0]
    parameters: Any = step.parameters
    steps: Any = plan.steps
    return [
        lambda: setattr(plan, "status", PlanStatus.ABORTED.value),
        lambda: setattr(plan, "next_due_at", T0),
        lambda: delattr(plan, "objective"),
        lambda: setattr(step, "status", StepStatus.SKIPPED),
        lambda: parameters.__setitem__("injected", "yes"),
        lambda: parameters.update(injected="yes"),
        lambda: parameters.setdefault("injected", "yes"),
        lambda: parameters.pop("channel"),
        parameters.popitem,
        lambda: parameters.__delitem__("channel"),
        lambda: parameters.__ior__({"injected": "yes"}),
        parameters.clear,
        lambda: steps.append(PlanStep(action_type="INJECTED")),
        lambda: steps.extend([PlanStep(action_type="INJECTED")]),
        lambda: steps.insert(0, PlanStep(action_type="INJECTED")),
        lambda: steps.__setitem__(0, PlanStep(action_type="INJECTED")),
        lambda: steps.__setitem__(slice(0, 1), []),
        lambda: steps.__iadd__([PlanStep(action_type="INJECTED")]),
        lambda: steps.__imul__(2),
        steps.reverse,
        lambda: steps.sort(key=lambda s: s.action_type, reverse=True),
        steps.pop,
        lambda: steps.remove(steps[0]),
        lambda: steps.__delitem__(0),
        steps.clear,
    ]


def _vandalize_plan(plan: RevenuePlanV1) -> int:
    """Try every change in place; how many were refused (frozen or read-only)."""
    refused = 0
    for change in _vandalism(plan):
        try:
            change()
        except (ValidationError, TypeError, KeyError, IndexError):
            refused += 1
    return refused


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


def test_plans_handed_out_cannot_change_the_store(store: ManagedStore) -> None:
    plan = _plan_with_parameters()
    returned = store.create_plan(plan, created(plan))
    before = _snapshot(store, plan)
    for handed_out in (
        returned,
        store.get_plan(plan.tenant_id, plan.plan_id),
        store.list_plans(plan.tenant_id).items[0],
    ):
        _vandalize_plan(handed_out)
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


def test_plans_and_steps_are_frozen(store: ManagedStore) -> None:
    plan = _plan_with_parameters()
    stored = store.create_plan(plan, created(plan))
    for record in (plan, stored):
        with pytest.raises(ValidationError, match="frozen"):
            record.status = PlanStatus.ABORTED.value  # type: ignore[misc]
        with pytest.raises(ValidationError, match="frozen"):
            record.steps[0].attempts = 3  # type: ignore[misc]
    assert store.get_plan(plan.tenant_id, plan.plan_id) == stored


def test_the_memory_store_shares_its_plans_sealed() -> None:
    """Reads and writes hand out the stored plan itself, and every change in place is refused."""
    store = MemoryStore()
    plan = _plan_with_parameters()
    returned = store.create_plan(plan, created(plan))
    got = store.get_plan(plan.tenant_id, plan.plan_id)
    assert got is returned  # shared, not copied
    assert store.list_plans(plan.tenant_id).items[0] is got
    assert type(got.steps) is ReadOnlyList
    assert all(type(s.parameters) is ReadOnlyDict for s in got.steps)
    assert got.steps[0].parameters == {"channel": "email"}
    before = _snapshot(store, plan)
    for change in _vandalism(got):  # nothing it holds can change
        with pytest.raises((ValidationError, TypeError), match=r"frozen|read-only"):
            change()
    assert _snapshot(store, plan) == before

    updated = store.update_plan(
        replaced(got, {"objective": "changed"}),
        expected_version=1,
        entries=[draft(LedgerEvent.UPDATED)],
    )
    assert store.get_plan(plan.tenant_id, plan.plan_id) is updated
    assert got.objective == plan.objective  # what a reader holds stays as it was read
    assert got.version == 1
    assert updated.steps is got.steps  # unchanged parts are shared, read-only
    for change in _vandalism(updated):
        with pytest.raises((ValidationError, TypeError), match=r"frozen|read-only"):
            change()

    # what is made from a sealed plan is the caller's own, and mutable
    for mine in (updated.model_copy(deep=True), copy.deepcopy(updated), detached(updated)):
        assert type(mine.steps) is list
        assert type(mine.steps[0].parameters) is dict
        mine.steps[0].parameters["mine"] = 1
        mine.steps.append(PlanStep(action_type="MINE"))
    unpickled = pickle.loads(pickle.dumps(updated))
    assert unpickled == updated
    assert type(unpickled.steps) is list
    assert type(list(updated.steps)) is list
    assert type(updated.steps[:1]) is list
    assert type(dict(updated.steps[0].parameters)) is dict
    assert type(updated.steps[0].parameters | {"x": 1}) is dict
    assert updated.model_dump()["steps"][0]["parameters"] == {"channel": "email"}
    assert type(updated.model_dump()["steps"]) is list
    assert RevenuePlanV1.model_validate_json(updated.model_dump_json()) == updated
    assert _snapshot(store, plan)[0] == updated.model_dump(mode="json")


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
    _vandalize_plan(current)
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
