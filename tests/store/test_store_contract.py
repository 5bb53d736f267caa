"""The plan store contract: every adapter (memory, sqlite, dynamodb) passes all of it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from orchestrator.errors import (
    AlreadyExists,
    FenceLost,
    GuardConflict,
    InvalidCursor,
    InvalidUpdate,
    NotFound,
    StoreError,
    VersionConflict,
)
from orchestrator.ledger import GENESIS_HASH, LedgerEvent, verify_chain
from orchestrator.ports import ManagedStore
from orchestrator.records import AttemptStatus, StepAttempt
from planpolicy.plan import PlanStatus, RevenuePlanV1
from support.plans import T0, created, draft, make_plan

TTL = timedelta(minutes=5)


def stored(store: ManagedStore, plan: RevenuePlanV1) -> RevenuePlanV1:
    return store.create_plan(plan, created(plan))


def change(
    store: ManagedStore,
    plan: RevenuePlanV1,
    event: LedgerEvent = LedgerEvent.UPDATED,
    **fields: object,
) -> RevenuePlanV1:
    """Apply ``fields`` with a version-checked update carrying one ledger entry."""
    return store.update_plan(
        plan.model_copy(update=fields), expected_version=plan.version, entries=[draft(event)]
    )


def activate(store: ManagedStore, plan: RevenuePlanV1) -> RevenuePlanV1:
    return store.update_plan(
        plan.model_copy(update={"status": PlanStatus.ACTIVE.value}),
        expected_version=plan.version,
        entries=[draft(LedgerEvent.ACTIVATED, reason="gate: can_activate")],
        activate_guard=True,
    )


def assert_ledger_intact(store: ManagedStore, plan: RevenuePlanV1) -> None:
    head, entries = store.ledger_snapshot(plan.tenant_id, plan.plan_id)
    assert verify_chain(entries, head=head) == []
    assert head.seq == len(entries)


# -- create and get -------------------------------------------------------------


def test_create_then_get_round_trips_the_plan(store: ManagedStore) -> None:
    plan = make_plan(next_due_at=T0)
    result = stored(store, plan.model_copy(update={"version": 7}))
    assert result.version == 1
    got = store.get_plan(plan.tenant_id, plan.plan_id)
    assert got == result
    assert got.model_dump() == plan.model_dump()


def test_create_writes_the_first_ledger_entries(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    [entry] = store.ledger(plan.tenant_id, plan.plan_id)
    assert (entry.seq, entry.plan_version, entry.prev_hash) == (1, 1, GENESIS_HASH)
    assert entry.event is LedgerEvent.CREATED
    assert entry.evidence == {"signals": {"open_p1_tickets": 2}, "arr": 120000.5}
    assert entry.document_versions["PlanType/RENEWAL_DEFENSE"] == 3
    assert entry.hash == entry.computed_hash()


def test_create_needs_a_ledger_entry(store: ManagedStore) -> None:
    plan = make_plan()
    with pytest.raises(InvalidUpdate):
        store.create_plan(plan, [])
    with pytest.raises(NotFound):
        store.get_plan(plan.tenant_id, plan.plan_id)


def test_create_twice_is_rejected_and_writes_nothing(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    with pytest.raises(AlreadyExists) as info:
        store.create_plan(plan.model_copy(update={"objective": "other"}), created(plan))
    assert not info.value.retryable
    assert store.get_plan(plan.tenant_id, plan.plan_id).objective == "keep the renewal"
    assert len(store.ledger(plan.tenant_id, plan.plan_id)) == 1


def test_missing_plan_and_other_tenants_plan_are_both_not_found(store: ManagedStore) -> None:
    plan = stored(store, make_plan("acme"))
    for tenant, plan_id in (("acme", "no-such-plan"), ("globex", plan.plan_id)):
        with pytest.raises(NotFound) as info:
            store.get_plan(tenant, plan_id)
        assert plan_id in str(info.value)
        with pytest.raises(NotFound):
            store.ledger(tenant, plan_id)


def test_same_plan_id_in_two_tenants_are_separate_plans(store: ManagedStore) -> None:
    one = stored(store, make_plan("acme", plan_id="shared-id"))
    other = stored(store, make_plan("globex", plan_id="shared-id"))
    change(store, one, objective="acme only")
    assert store.get_plan("globex", "shared-id").objective == other.objective
    assert {ref.tenant_id for ref in store.find_plan("shared-id")} == {"acme", "globex"}
    assert len(store.ledger("globex", "shared-id")) == 1


# -- versioned updates -----------------------------------------------------------


def test_update_bumps_the_version_and_appends_its_ledger_entries(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    updated = store.update_plan(
        plan.model_copy(update={"objective": "new"}),
        expected_version=1,
        entries=[draft(LedgerEvent.APPROVED, reason="ok"), draft(LedgerEvent.NOTE)],
    )
    assert updated.version == 2
    assert store.get_plan(plan.tenant_id, plan.plan_id) == updated
    entries = store.ledger(plan.tenant_id, plan.plan_id)
    assert [(e.seq, e.event, e.plan_version) for e in entries] == [
        (1, LedgerEvent.CREATED, 1),
        (2, LedgerEvent.APPROVED, 2),
        (3, LedgerEvent.NOTE, 2),
    ]
    assert entries[1].prev_hash == entries[0].hash
    assert_ledger_intact(store, plan)


def test_stale_version_is_rejected_and_never_overwrites(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    first = change(store, plan, objective="first writer")
    with pytest.raises(VersionConflict) as info:
        change(store, plan, objective="stale writer")
    assert info.value.retryable
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert store.get_plan(plan.tenant_id, plan.plan_id) == first
    assert len(store.ledger(plan.tenant_id, plan.plan_id)) == 2


def test_update_of_a_missing_or_foreign_plan_is_not_found(store: ManagedStore) -> None:
    plan = stored(store, make_plan("acme"))
    with pytest.raises(NotFound):
        change(store, make_plan("acme"))
    with pytest.raises(NotFound):
        change(store, plan.model_copy(update={"tenant_id": "globex"}))
    assert store.get_plan("acme", plan.plan_id).version == 1


def test_update_cannot_change_what_keys_the_plan(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    for field, value in (("account_id", "acct-other"), ("plan_type", "UPSELL")):
        with pytest.raises(InvalidUpdate):
            store.update_plan(plan.model_copy(update={field: value}), expected_version=1)
    assert store.get_plan(plan.tenant_id, plan.plan_id) == plan


def test_update_without_entries_still_bumps_the_version(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    updated = store.update_plan(plan.model_copy(update={"objective": "x"}), expected_version=1)
    assert updated.version == 2
    assert len(store.ledger(plan.tenant_id, plan.plan_id)) == 1
    assert_ledger_intact(store, plan)


def test_one_write_carries_a_bounded_number_of_entries(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    with pytest.raises(InvalidUpdate):
        store.update_plan(plan, expected_version=1, entries=[draft()] * 26)
    assert store.get_plan(plan.tenant_id, plan.plan_id).version == 1


# -- listing ---------------------------------------------------------------------


def _seed_listing(store: ManagedStore) -> list[RevenuePlanV1]:
    plans = []
    for i in range(7):
        status = PlanStatus.DRAFT if i % 2 else PlanStatus.APPROVED
        account = "acct-a" if i < 4 else "acct-b"
        plans.append(
            stored(
                store,
                make_plan("acme", account, status=status, created_at=T0 + timedelta(minutes=i)),
            )
        )
    stored(store, make_plan("globex", "acct-a"))
    return plans


def _all_pages(store: ManagedStore, limit: int, **filters: str) -> list[list[RevenuePlanV1]]:
    """Every page of a listing, following cursors to the end."""
    pages = []
    cursor = None
    while True:
        page = store.list_plans("acme", limit=limit, cursor=cursor, **filters)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_list_pages_through_a_tenants_plans_in_order(store: ManagedStore) -> None:
    plans = _seed_listing(store)
    pages = _all_pages(store, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [plan for page in pages for plan in page]
    expected = sorted(plans, key=lambda p: (p.status, p.created_at, p.plan_id))
    assert [p.plan_id for p in listed] == [p.plan_id for p in expected]
    assert all(p.tenant_id == "acme" for p in listed)


def test_list_exact_page_has_no_next_cursor(store: ManagedStore) -> None:
    _seed_listing(store)
    page = store.list_plans("acme", limit=7)
    assert len(page.items) == 7
    assert page.next_cursor is None


def test_list_filters_by_status_account_and_both(store: ManagedStore) -> None:
    plans = _seed_listing(store)

    def ids(pages: list[list[RevenuePlanV1]]) -> set[str]:
        return {p.plan_id for page in pages for p in page}

    drafts = {p.plan_id for p in plans if p.status == PlanStatus.DRAFT}
    in_a = {p.plan_id for p in plans if p.account_id == "acct-a"}
    assert ids(_all_pages(store, 2, status="DRAFT")) == drafts
    assert ids(_all_pages(store, 2, account_id="acct-a")) == in_a
    assert ids(_all_pages(store, 1, account_id="acct-a", status="DRAFT")) == drafts & in_a
    assert store.list_plans("acme", status="ACTIVE").items == []
    assert store.list_plans("nobody").items == []


def test_list_reflects_status_changes(store: ManagedStore) -> None:
    plan = stored(store, make_plan(status=PlanStatus.APPROVED))
    activate(store, plan)
    assert store.list_plans(plan.tenant_id, status="APPROVED").items == []
    [active] = store.list_plans(plan.tenant_id, status="ACTIVE").items
    assert active.plan_id == plan.plan_id


def test_cursor_is_only_valid_for_its_own_query(store: ManagedStore) -> None:
    _seed_listing(store)
    cursor = store.list_plans("acme", limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        store.list_plans("globex", limit=2, cursor=cursor)
    with pytest.raises(InvalidCursor):
        store.list_plans("acme", limit=2, cursor=cursor, status="DRAFT")
    for garbage in ("not-a-cursor!", "e30", cursor[:-3]):
        with pytest.raises(InvalidCursor):
            store.list_plans("acme", cursor=garbage)


def test_list_limit_is_bounded(store: ManagedStore) -> None:
    for limit in (0, 501):
        with pytest.raises(ValueError):
            store.list_plans("acme", limit=limit)


# -- the activation guard ----------------------------------------------------------


def test_activation_takes_the_guard(store: ManagedStore) -> None:
    plan = stored(store, make_plan(status=PlanStatus.APPROVED))
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None
    active = activate(store, plan)
    assert active.status == "ACTIVE"
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") == plan.plan_id


def test_second_activation_is_rejected_naming_the_holder(store: ManagedStore) -> None:
    first = stored(store, make_plan(status=PlanStatus.APPROVED))
    second = stored(store, make_plan(status=PlanStatus.APPROVED))
    activate(store, first)
    with pytest.raises(GuardConflict) as info:
        activate(store, second)
    assert info.value.holder_plan_id == first.plan_id
    assert not info.value.retryable
    assert first.plan_id in str(info.value)
    # nothing of the rejected write happened
    assert store.get_plan("acme", second.plan_id) == second
    assert len(store.ledger("acme", second.plan_id)) == 1
    # the rejection is recorded without a plan change
    [entry] = store.append_ledger(
        "acme",
        second.plan_id,
        [draft(LedgerEvent.ACTIVATION_REJECTED, reason=str(info.value))],
    )
    assert (entry.seq, entry.plan_version) == (2, 1)
    assert_ledger_intact(store, second)


def test_guard_is_per_tenant_account_and_plan_type(store: ManagedStore) -> None:
    activate(store, stored(store, make_plan("acme", "acct-1", status=PlanStatus.APPROVED)))
    for tenant, account, plan_type in (
        ("acme", "acct-2", "RENEWAL_DEFENSE"),
        ("acme", "acct-1", "EXPANSION"),
        ("globex", "acct-1", "RENEWAL_DEFENSE"),
    ):
        plan = make_plan(tenant, account, plan_type=plan_type, status=PlanStatus.APPROVED)
        activate(store, stored(store, plan))
        assert store.active_plan_for(tenant, account, plan_type) == plan.plan_id


def test_holder_may_write_with_the_guard_again(store: ManagedStore) -> None:
    plan = activate(store, stored(store, make_plan(status=PlanStatus.APPROVED)))
    paused = change(store, plan, LedgerEvent.PAUSED, status="PAUSED")
    resumed = store.update_plan(
        paused.model_copy(update={"status": "ACTIVE"}),
        expected_version=paused.version,
        entries=[draft(LedgerEvent.RESUMED)],
        activate_guard=True,
    )
    assert resumed.version == 4
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") == plan.plan_id


def test_terminal_transition_releases_the_guard_in_the_same_write(store: ManagedStore) -> None:
    first = activate(store, stored(store, make_plan(status=PlanStatus.APPROVED)))
    second = stored(store, make_plan(status=PlanStatus.APPROVED))
    store.update_plan(
        first.model_copy(update={"status": "COMPLETED", "next_due_at": None}),
        expected_version=first.version,
        entries=[draft(LedgerEvent.COMPLETED, reason="objective_met")],
        release_guard=True,
    )
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None
    activate(store, second)
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") == second.plan_id


def test_releasing_from_a_plan_that_does_not_hold_the_guard_changes_nothing(
    store: ManagedStore,
) -> None:
    holder = activate(store, stored(store, make_plan(status=PlanStatus.APPROVED)))
    other = stored(store, make_plan(status=PlanStatus.APPROVED))
    aborted = store.update_plan(
        other.model_copy(update={"status": "ABORTED"}),
        expected_version=1,
        entries=[draft(LedgerEvent.ABORTED)],
        release_guard=True,
    )
    assert aborted.status == "ABORTED"
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") == holder.plan_id


def test_a_stale_activation_takes_no_guard(store: ManagedStore) -> None:
    plan = stored(store, make_plan(status=PlanStatus.APPROVED))
    change(store, plan, objective="moved on")
    with pytest.raises(VersionConflict):
        activate(store, plan)
    assert store.active_plan_for("acme", "acct-1", "RENEWAL_DEFENSE") is None


def test_taking_and_releasing_at_once_is_refused(store: ManagedStore) -> None:
    plan = stored(store, make_plan(status=PlanStatus.APPROVED))
    with pytest.raises(InvalidUpdate):
        store.update_plan(plan, expected_version=1, activate_guard=True, release_guard=True)


# -- the due index -----------------------------------------------------------------


def test_due_plans_are_those_due_at_or_before_now_earliest_first(store: ManagedStore) -> None:
    late = stored(store, make_plan("acme", next_due_at=T0 - timedelta(minutes=1)))
    early = stored(store, make_plan("globex", next_due_at=T0 - timedelta(hours=1)))
    exactly = stored(store, make_plan("acme", next_due_at=T0))
    stored(store, make_plan("acme", next_due_at=T0 + timedelta(microseconds=1)))
    stored(store, make_plan("acme", next_due_at=None))
    due = store.due_plans(T0)
    assert [(r.tenant_id, r.plan_id) for r in due] == [
        ("globex", early.plan_id),
        ("acme", late.plan_id),
        ("acme", exactly.plan_id),
    ]
    assert due[0].next_due_at == T0 - timedelta(hours=1)
    assert [r.plan_id for r in store.due_plans(T0, limit=2)] == [early.plan_id, late.plan_id]


def test_due_index_follows_updates(store: ManagedStore) -> None:
    plan = stored(store, make_plan(next_due_at=T0))
    later = change(store, plan, next_due_at=T0 + timedelta(days=1))
    assert store.due_plans(T0) == []
    assert [r.plan_id for r in store.due_plans(T0 + timedelta(days=1))] == [plan.plan_id]
    change(store, later, next_due_at=None)
    assert store.due_plans(T0 + timedelta(days=365)) == []


def test_due_plans_across_many_plans_respects_the_limit(store: ManagedStore) -> None:
    plans = [
        stored(store, make_plan(f"tenant-{i % 3}", next_due_at=T0 - timedelta(seconds=i)))
        for i in range(12)
    ]
    due = store.due_plans(T0, limit=5)
    expected = sorted(plans, key=lambda p: p.next_due_at or T0)[:5]
    assert [r.plan_id for r in due] == [p.plan_id for p in expected]


# -- leases and fences ---------------------------------------------------------------


def test_lease_excludes_others_until_it_expires(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    fence = store.acquire_lease("acme", plan.plan_id, "worker-a", T0, TTL)
    assert fence is not None
    assert (fence.owner, fence.token, fence.expires_at) == ("worker-a", 1, T0 + TTL)
    assert store.acquire_lease("acme", plan.plan_id, "worker-b", T0 + TTL / 2, TTL) is None
    taken = store.acquire_lease("acme", plan.plan_id, "worker-b", T0 + TTL, TTL)
    assert taken is not None
    assert taken.token == 2


def test_every_acquisition_gets_a_greater_fence(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    tokens = []
    for i in range(4):
        fence = store.acquire_lease(
            "acme", plan.plan_id, "worker-a", T0 + timedelta(seconds=i), TTL
        )
        assert fence is not None
        tokens.append(fence.token)
        if i == 2:
            store.release_lease(fence)
    assert tokens == sorted(set(tokens))


def test_release_frees_the_lease_but_a_stale_release_does_not(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    old = store.acquire_lease("acme", plan.plan_id, "worker-a", T0, TTL)
    assert old is not None
    store.release_lease(old)
    new = store.acquire_lease("acme", plan.plan_id, "worker-b", T0, TTL)
    assert new is not None
    store.release_lease(old)  # stale: must not free worker-b's lease
    assert store.acquire_lease("acme", plan.plan_id, "worker-c", T0, TTL) is None


def test_lease_on_missing_or_foreign_plan_is_not_found(store: ManagedStore) -> None:
    plan = stored(store, make_plan("acme"))
    with pytest.raises(NotFound):
        store.acquire_lease("acme", "no-such-plan", "w", T0, TTL)
    with pytest.raises(NotFound):
        store.acquire_lease("globex", plan.plan_id, "w", T0, TTL)


def test_write_with_a_stale_fence_fails_and_writes_nothing(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    old = store.acquire_lease("acme", plan.plan_id, "worker-a", T0, TTL)
    new = store.acquire_lease("acme", plan.plan_id, "worker-b", T0 + TTL, TTL)
    assert old is not None
    assert new is not None
    with pytest.raises(FenceLost) as info:
        store.update_plan(plan, expected_version=1, entries=[draft()], fence=old)
    assert not info.value.retryable
    with pytest.raises(FenceLost):
        store.append_ledger("acme", plan.plan_id, [draft()], fence=old)
    assert store.get_plan("acme", plan.plan_id).version == 1
    assert len(store.ledger("acme", plan.plan_id)) == 1
    updated = store.update_plan(plan, expected_version=1, entries=[draft()], fence=new)
    assert updated.version == 2


def test_a_fence_only_covers_its_own_plan(store: ManagedStore) -> None:
    one = stored(store, make_plan())
    two = stored(store, make_plan())
    fence = store.acquire_lease("acme", one.plan_id, "w", T0, TTL)
    assert fence is not None
    with pytest.raises(InvalidUpdate):
        store.update_plan(two, expected_version=1, fence=fence)


# -- step attempts -------------------------------------------------------------------


def _attempt(plan: RevenuePlanV1, n: int = 1, step: int = 0, **fields: object) -> StepAttempt:
    return StepAttempt.model_validate(
        {
            "tenant_id": plan.tenant_id,
            "plan_id": plan.plan_id,
            "step_id": plan.steps[step].step_id,
            "attempt": n,
            "action_type": plan.steps[step].action_type,
            "created_at": T0,
            "updated_at": T0,
            **fields,
        }
    )


def test_attempt_is_inserted_only_if_absent(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    fence = store.acquire_lease("acme", plan.plan_id, "w", T0, TTL)
    assert fence is not None
    first = _attempt(plan)
    assert store.put_attempt(first, fence) is True
    assert store.put_attempt(_attempt(plan, status=AttemptStatus.FAILED), fence) is False
    got = store.get_attempt("acme", plan.plan_id, first.step_id, 1)
    assert got.status is AttemptStatus.STARTED
    assert got.fence == fence.token
    assert got.idempotency_key == f"{plan.plan_id}:{first.step_id}:1"


def test_attempts_are_keyed_by_plan_step_and_number(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    fence = store.acquire_lease("acme", plan.plan_id, "w", T0, TTL)
    assert fence is not None
    keys = [(0, 1), (0, 2), (1, 1), (0, 10)]
    for step, n in keys:
        assert store.put_attempt(_attempt(plan, n, step), fence)
    listed = store.list_attempts("acme", plan.plan_id)
    assert [(str(a.step_id), a.attempt) for a in listed] == sorted(
        (str(plan.steps[step].step_id), n) for step, n in keys
    )
    assert store.list_attempts("globex", plan.plan_id) == []
    with pytest.raises(NotFound):
        store.get_attempt("acme", plan.plan_id, uuid.uuid4(), 1)
    with pytest.raises(NotFound):
        store.get_attempt("globex", plan.plan_id, plan.steps[0].step_id, 1)


def test_attempt_writes_are_fenced(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    old = store.acquire_lease("acme", plan.plan_id, "a", T0, TTL)
    assert old is not None
    assert store.put_attempt(_attempt(plan), old)
    new = store.acquire_lease("acme", plan.plan_id, "b", T0 + TTL, TTL)
    assert new is not None
    with pytest.raises(FenceLost):
        store.put_attempt(_attempt(plan, 2), old)
    with pytest.raises(FenceLost):
        store.update_attempt(_attempt(plan, status=AttemptStatus.SUCCEEDED), old)
    assert store.get_attempt("acme", plan.plan_id, plan.steps[0].step_id, 1).status == "STARTED"
    done = store.update_attempt(_attempt(plan, status=AttemptStatus.SUCCEEDED), new)
    assert done.fence == new.token
    assert store.get_attempt("acme", plan.plan_id, plan.steps[0].step_id, 1) == done
    with pytest.raises(NotFound):
        store.update_attempt(_attempt(plan, 5), new)


def test_outcome_is_recorded_with_the_plan_change_in_one_write(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    fence = store.acquire_lease("acme", plan.plan_id, "w", T0, TTL)
    assert fence is not None
    store.put_attempt(_attempt(plan), fence)
    outcome = _attempt(plan, status=AttemptStatus.SUCCEEDED, outcome={"intent": "i-1"})
    step = plan.steps[0].model_copy(update={"status": "SUCCEEDED", "attempts": 1})
    updated = store.update_plan(
        plan.model_copy(update={"steps": [step, plan.steps[1]]}),
        expected_version=1,
        entries=[draft(LedgerEvent.STEP_OUTCOME, step_id=step.step_id, attempt=1)],
        fence=fence,
        attempts=[outcome],
    )
    assert updated.steps[0].status == "SUCCEEDED"
    got = store.get_attempt("acme", plan.plan_id, step.step_id, 1)
    assert (got.status, got.outcome) == (AttemptStatus.SUCCEEDED, {"intent": "i-1"})
    # a missing attempt fails the whole write
    with pytest.raises(NotFound):
        store.update_plan(
            updated,
            expected_version=2,
            entries=[draft()],
            fence=fence,
            attempts=[_attempt(plan, 9)],
        )
    assert store.get_plan("acme", plan.plan_id).version == 2
    assert len(store.ledger("acme", plan.plan_id)) == 2
    with pytest.raises(InvalidUpdate):  # attempts are only written under a fence
        store.update_plan(updated, expected_version=2, attempts=[outcome])


# -- the ledger ----------------------------------------------------------------------


def test_append_ledger_continues_the_chain_without_a_plan_change(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    appended = store.append_ledger(
        "acme", plan.plan_id, [draft(LedgerEvent.NOTE, reason="a"), draft(LedgerEvent.NOTE)]
    )
    assert [(e.seq, e.plan_version) for e in appended] == [(2, 1), (3, 1)]
    assert store.get_plan("acme", plan.plan_id) == plan
    # a later plan change chains after the appended entries
    change(store, plan)
    assert [e.seq for e in store.ledger("acme", plan.plan_id)] == [1, 2, 3, 4]
    assert_ledger_intact(store, plan)
    assert store.append_ledger("acme", plan.plan_id, []) == []


def test_append_ledger_to_missing_or_foreign_plan_is_not_found(store: ManagedStore) -> None:
    plan = stored(store, make_plan("acme"))
    with pytest.raises(NotFound):
        store.append_ledger("globex", plan.plan_id, [draft()])
    with pytest.raises(NotFound):
        store.append_ledger("acme", "missing", [draft()])
    assert [r.tenant_id for r in store.scan_plans()] == ["acme"]


def test_ledger_is_append_only_by_construction(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    [entry] = store.ledger("acme", plan.plan_id)
    with pytest.raises(ValueError):
        entry.reason = "rewritten"
    verbs = {name.split("_")[0] for name in dir(store) if "ledger" in name and name[0] != "_"}
    assert verbs <= {"ledger", "append"}


def test_ledger_snapshot_and_chain_verify(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    for i in range(3):
        plan = change(store, plan, objective=f"v{i}")
    head, entries = store.ledger_snapshot("acme", plan.plan_id)
    assert (head.seq, head.hash) == (4, entries[-1].hash)
    assert verify_chain(entries, head=head) == []
    with pytest.raises(NotFound):
        store.ledger_snapshot("globex", plan.plan_id)


def test_scan_and_find_cover_every_tenant(store: ManagedStore) -> None:
    a = stored(store, make_plan("acme", next_due_at=T0))
    b = stored(store, make_plan("globex"))
    refs = list(store.scan_plans())
    assert {(r.tenant_id, r.plan_id) for r in refs} == {("acme", a.plan_id), ("globex", b.plan_id)}
    [found] = store.find_plan(a.plan_id)
    assert (found.tenant_id, found.next_due_at) == ("acme", T0)
    assert store.find_plan("nope") == []


def test_init_is_idempotent(store: ManagedStore) -> None:
    plan = stored(store, make_plan())
    store.init()
    store.init()
    assert store.get_plan("acme", plan.plan_id) == plan


def test_errors_are_store_errors(store: ManagedStore) -> None:
    with pytest.raises(StoreError):
        store.get_plan("acme", "missing")
