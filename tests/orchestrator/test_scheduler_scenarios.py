"""Scenarios of the poll tick, on the memory store with a hand-moved clock.

The bundled RENEWAL_DEFENSE plan type has three steps that between them use
every adaptation: PREP_RENEWAL_BRIEF (3 attempts, 60 min backoff, then skip),
REQUEST_RENEWAL_MEETING (after the brief; 3 attempts, 1 day backoff, then
pause) and ESCALATE_SUPPORT_RISK (human touch, `when` open P1 tickets, not
before one day after activation; 2 attempts, then abort). The tests' FOLLOW_UP
type completes when all its steps are done.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.adapters.memory_executor import Outcome
from orchestrator.execution import ActionIntent, ExecutionResult
from orchestrator.records import AttemptStatus
from orchestrator.scheduler import Scheduler, SchedulerSettings
from planpolicy import GuardDenied, InvalidTransition, StepStatus
from support.world import AE, DIRECTOR, MANAGER, TENANT, World, make_plan

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PREP, MEETING, ESCALATE = "PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK"


def started(world: World, account: str = "acct-1", **plan: object) -> str:
    """An eligible account and an approved plan for it; returns the plan id."""
    world.eligible(account)
    return world.approved_plan(account, **plan).plan_id  # type: ignore[arg-type]


def reasons(world: World, plan_id: str, event: str) -> list[str]:
    return [e.reason for e in world.ledger(plan_id) if e.event.value == event]


# --- activation ------------------------------------------------------------------


def test_first_tick_activates_and_runs_the_steps_that_are_due() -> None:
    world = World()
    plan_id = started(world)
    summary = world.tick()
    plan = world.plan(plan_id)
    assert plan.status == "ACTIVE"
    assert summary.counts["activated"] == 1
    # the brief, then the meeting (ordered after it); the escalation waits a day
    assert world.step(plan_id, PREP).status == StepStatus.SUCCEEDED
    assert world.step(plan_id, MEETING).status == StepStatus.SUCCEEDED
    assert world.step(plan_id, ESCALATE).status == StepStatus.PENDING
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") == plan_id
    assert world.events(plan_id) == [
        "created",
        "approved",
        "gate_decision",
        "activated",
        "step_intent",
        "step_outcome",
        "step_intent",
        "step_outcome",
    ]
    assert plan.next_due_at is not None and plan.next_due_at > world.clock.now()


def test_a_gate_denial_is_ledgered_and_never_retried() -> None:
    world = World()
    world.eligible("acct-1", status="RENEWED")  # eligibility: renewal must still be open
    plan_id = world.approved_plan("acct-1").plan_id
    assert world.tick().counts["activation_rejected"] == 1
    plan = world.plan(plan_id)
    assert plan.status == "APPROVED"
    assert plan.next_due_at == plan.expires_at  # parked: no queueing
    [rejection] = reasons(world, plan_id, "activation_rejected")
    assert "renewal_still_open" in rejection or "status" in rejection
    entries = len(world.ledger(plan_id))
    world.update_account("acct-1", renewal_status="AT_RISK")  # eligible again, but no retry
    for _ in range(5):
        assert world.tick(DAY).due == 0
    assert len(world.ledger(plan_id)) == entries
    # a person may activate it again
    result = world.service.activate(TENANT, plan_id, MANAGER, "renewal reopened")
    assert result.activated and world.plan(plan_id).status == "ACTIVE"


def test_conflicting_activation_rejects_the_second_plan_without_queueing() -> None:
    world = World()
    first = started(world)
    second = world.approved_plan("acct-1").plan_id
    summary = world.tick()
    assert summary.counts["activated"] == 1 and summary.counts["activation_rejected"] == 1
    assert world.plan(first).status == "ACTIVE"
    assert world.plan(second).status == "APPROVED"
    [rejection] = world.ledger(second)[-1:]
    assert rejection.event.value == "activation_rejected"
    assert first in rejection.reason
    assert rejection.evidence["reasons"][0]["code"] == "CONFLICT_ACTIVE_PLAN"  # type: ignore[index]
    # the first plan ends; the second is not activated behind it
    world.update_account("acct-1", renewal_status="RENEWED")
    world.tick(HOUR)
    assert world.plan(first).status == "COMPLETED"
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None
    world.tick(HOUR)
    assert world.plan(second).status == "APPROVED"


def test_an_approved_plan_that_is_never_activated_expires() -> None:
    world = World()
    world.eligible("acct-1", status="LOST")
    plan_id = world.approved_plan("acct-1", expires_in=timedelta(days=10)).plan_id
    world.tick()
    world.clock.advance(timedelta(days=10))
    assert world.tick().counts["expired"] == 1
    plan = world.plan(plan_id)
    assert (plan.status, plan.completion_reason, plan.next_due_at) == ("EXPIRED", "expired", None)


# --- the state evaluator -------------------------------------------------------------


def test_objective_met_mid_plan_completes_and_releases_the_guard() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.update_account("acct-1", renewal_status="RENEWED")
    summary = world.tick(HOUR)
    plan = world.plan(plan_id)
    assert summary.counts["objective_met"] == 1
    assert (plan.status, plan.completion_reason) == ("COMPLETED", "objective_met")
    assert world.step(plan_id, ESCALATE).status == StepStatus.PENDING  # never dispatched
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None
    assert world.ledger(plan_id)[-1].evidence["met"] == ["renewal_closed_won"]
    assert world.tick(DAY).due == 0  # left the due index


def test_all_steps_done_completes_a_plan_type_that_says_so() -> None:
    world = World()
    world.eligible("acct-2", status="OPEN")
    plan_id = world.approved_plan("acct-2", plan_type="FOLLOW_UP").plan_id
    summary = world.tick()
    plan = world.plan(plan_id)
    assert summary.counts["all_steps_done"] == 1
    assert (plan.status, plan.completion_reason) == ("COMPLETED", "all_steps_done")
    assert world.store.active_plan_for(TENANT, "acct-2", "FOLLOW_UP") is None


def test_all_steps_done_does_not_complete_renewal_defense() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.service.approve_step(TENANT, plan_id, world.step(plan_id, ESCALATE).step_id, MANAGER)
    world.tick(DAY)
    assert all(s.status == StepStatus.SUCCEEDED for s in world.plan(plan_id).steps)
    world.tick(DAY)
    assert world.plan(plan_id).status == "ACTIVE"  # only the objective completes it


def test_a_cel_error_in_the_objective_is_ledgered_and_completes_nothing() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.update_account("acct-1", renewal=None)  # `account.renewal.status` cannot evaluate
    summary = world.tick(HOUR)
    assert summary.counts["evaluation_errors"] == 1
    assert world.plan(plan_id).status == "ACTIVE"
    notes = reasons(world, plan_id, "note")
    assert any("renewal_closed_won" in n and "could not be evaluated" in n for n in notes)
    assert world.plan(plan_id).evaluation_error is not None


def test_an_objective_error_is_noted_once_per_cause_and_its_recovery_too() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.update_account("acct-1", renewal=None)
    for _ in range(5):  # five hourly rechecks with the same error
        assert world.tick(HOUR).counts["evaluation_errors"] == 1
    failing = [n for n in reasons(world, plan_id, "note") if "could not be evaluated" in n]
    assert len(failing) == 1
    world.update_account("acct-1", renewal={"status": "AT_RISK", "amount": 1000.0})
    world.tick(HOUR)
    world.tick(HOUR)
    notes = reasons(world, plan_id, "note")
    assert sum("can be evaluated again" in n for n in notes) == 1
    assert world.plan(plan_id).evaluation_error is None


def test_expiry_of_an_active_plan() -> None:
    world = World()
    plan_id = started(world, expires_in=timedelta(days=3))
    world.tick()
    world.clock.advance(timedelta(days=3))
    assert world.tick().counts["expired"] == 1
    assert world.plan(plan_id).status == "EXPIRED"
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None


# --- retries and adaptations ------------------------------------------------------------


def test_a_failed_step_retries_after_its_backoff_and_then_succeeds() -> None:
    world = World(script={(PREP, 1): Outcome.fail("crm timeout")})
    plan_id = started(world)
    world.tick()
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts, step.last_error) == (StepStatus.FAILED, 1, "crm timeout")
    assert world.step(plan_id, MEETING).status == StepStatus.PENDING  # ordered after the brief
    [retry] = reasons(world, plan_id, "retried")
    assert (
        retry == "`PREP_RENEWAL_BRIEF` will retry as attempt 2 after 1 hour (attempt 1 of 3 failed)"
    )
    world.tick(timedelta(minutes=59))
    assert world.step(plan_id, PREP).attempts == 1  # still backing off
    world.tick(timedelta(minutes=1))
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 2)
    attempts = world.store.list_attempts(TENANT, plan_id)
    statuses = sorted((a.attempt, a.status) for a in attempts if a.step_id == step.step_id)
    assert statuses == [(1, AttemptStatus.FAILED), (2, AttemptStatus.SUCCEEDED)]
    assert world.executions(plan_id, PREP) == 2


def test_retries_exhausted_skip_moves_on() -> None:
    world = World(script={(PREP, None): Outcome.fail("no data")})
    plan_id = started(world)
    world.tick()
    world.tick(HOUR)
    world.tick(2 * HOUR)
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.SKIPPED, 3)
    assert step.skip_reason is not None and "rule is `skip`" in step.skip_reason
    # the meeting runs once the brief is settled (skipped counts as settled)
    assert world.step(plan_id, MEETING).status == StepStatus.SUCCEEDED
    [skip] = [e for e in world.ledger(plan_id) if e.event.value == "skipped"]
    assert skip.evidence["adaptation"] == "skip"
    assert "failed attempt 3 of 3" in skip.reason and "no data" in skip.reason
    assert world.executions(plan_id, PREP) == 3


def test_retries_exhausted_pause_then_resume_grants_one_more_attempt() -> None:
    world = World(
        script={
            (MEETING, 1): Outcome.fail(),
            (MEETING, 2): Outcome.fail(),
            (MEETING, 3): Outcome.fail("bounced"),
        }
    )
    plan_id = started(world)
    world.tick()
    world.tick(DAY)
    summary = world.tick(2 * DAY)  # backoff 1 day, then 2 days (multiplier 2)
    plan = world.plan(plan_id)
    assert summary.counts["adapt_pause"] == 1
    assert plan.status == "PAUSED"
    assert world.step(plan_id, MEETING).attempts == 3
    [pause] = [e for e in world.ledger(plan_id) if e.event.value == "paused"]
    assert pause.actor == "orchestrator" and pause.evidence["adaptation"] == "pause"
    assert "bounced" in pause.reason and "resume the plan to try attempt 4" in pause.reason
    # paused: nothing is dispatched, however long we wait
    world.run(hours=48)
    assert world.step(plan_id, MEETING).attempts == 3
    assert world.step(plan_id, ESCALATE).attempts == 0
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") == plan_id  # kept
    world.service.resume(TENANT, plan_id, MANAGER, "contact fixed")
    world.tick(HOUR)
    step = world.step(plan_id, MEETING)
    assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 4)
    assert world.plan(plan_id).status == "ACTIVE"


def test_retries_exhausted_abort_ends_the_plan() -> None:
    world = World(script={(ESCALATE, None): Outcome.fail("pager down")})
    plan_id = started(world)
    world.tick()
    world.service.approve_step(TENANT, plan_id, world.step(plan_id, ESCALATE).step_id, MANAGER)
    world.tick(DAY)
    assert world.step(plan_id, ESCALATE).attempts == 1
    summary = world.tick(4 * HOUR)
    plan = world.plan(plan_id)
    assert summary.counts["adapt_abort"] == 1
    assert (plan.status, plan.completion_reason) == ("ABORTED", "retries_exhausted")
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None
    last = world.ledger(plan_id)[-1]
    assert last.event.value == "aborted" and last.evidence["adaptation"] == "abort"
    assert world.executions(plan_id, ESCALATE) == 2


def test_only_the_three_adaptations_appear_in_the_ledger() -> None:
    world = World(script={(PREP, None): Outcome.fail(), (MEETING, None): Outcome.fail()})
    plan_id = started(world)
    world.run(hours=24 * 4)
    events = set(world.events(plan_id))
    assert events <= {
        "created", "approved", "gate_decision", "activated", "step_intent", "step_outcome",
        "retried", "skipped", "paused", "note",
    }  # fmt: skip
    assert world.plan(plan_id).status == "PAUSED"


# --- human touch and preconditions ---------------------------------------------------------


def test_a_human_touch_step_waits_for_an_authorised_approval() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.run(hours=72)
    assert world.step(plan_id, ESCALATE).status == StepStatus.PENDING
    assert world.executions(plan_id, ESCALATE) == 0
    step_id = world.step(plan_id, ESCALATE).step_id
    with pytest.raises(GuardDenied, match="authority"):
        world.service.approve_step(TENANT, plan_id, step_id, AE, "I want it")
    world.service.approve_step(TENANT, plan_id, step_id, MANAGER, "P1s are real")
    assert world.plan(plan_id).next_due_at == world.clock.now()  # due at once
    world.tick(timedelta(minutes=1))
    step = world.step(plan_id, ESCALATE)
    assert (step.status, step.human_approved_by) == (StepStatus.SUCCEEDED, MANAGER.user_id)
    [approval] = [e for e in world.ledger(plan_id) if e.event.value == "step_approved"]
    assert approval.actor == MANAGER.user_id and approval.step_id == step_id


def test_a_step_whose_when_is_false_is_skipped_with_its_reason() -> None:
    world = World()
    world.eligible("acct-1", p1_tickets=0)
    plan_id = world.approved_plan("acct-1").plan_id
    world.tick()
    world.tick(DAY)  # the escalation becomes due: no P1 tickets, no approval needed to skip it
    step = world.step(plan_id, ESCALATE)
    assert step.status == StepStatus.SKIPPED
    assert step.skip_reason == "`signals.open_p1_tickets > 0` is false"
    [skip] = [e for e in world.ledger(plan_id) if e.event.value == "skipped"]
    assert skip.step_id == step.step_id and skip.evidence["code"] == "STEP_PRECONDITION_FALSE"
    assert world.executions(plan_id, ESCALATE) == 0


def test_timing_sets_when_a_step_becomes_due() -> None:
    world = World()
    world.eligible("acct-1", renewal_in=timedelta(days=110))  # meeting not before renewal - 90 days
    plan_id = world.approved_plan("acct-1").plan_id
    world.tick()
    meeting = world.step(plan_id, MEETING)
    assert meeting.status == StepStatus.PENDING
    assert meeting.due_at == world.clock.now() + timedelta(days=20)
    assert world.plan(plan_id).next_due_at is not None
    world.tick(timedelta(days=19, hours=23))
    assert world.step(plan_id, MEETING).status == StepStatus.PENDING
    world.tick(HOUR)
    assert world.step(plan_id, MEETING).status == StepStatus.SUCCEEDED


# --- pause, resume, abort -----------------------------------------------------------------


def test_pause_dispatches_nothing_but_records_an_outcome_that_arrives() -> None:
    world = World(script={(PREP, None): Outcome.pending(for_=timedelta(hours=3))})
    plan_id = started(world)
    world.tick()
    assert world.step(plan_id, PREP).status == StepStatus.DISPATCHED
    world.service.pause(TENANT, plan_id, AE, "customer asked for quiet")  # the owner may pause
    world.run(hours=4, every=timedelta(minutes=30))
    plan = world.plan(plan_id)
    assert plan.status == "PAUSED"
    assert world.step(plan_id, PREP).status == StepStatus.SUCCEEDED  # recorded while paused
    assert world.step(plan_id, MEETING).attempts == 0  # nothing new dispatched
    outcome = [e for e in world.ledger(plan_id) if e.event.value == "step_outcome"]
    assert len(outcome) == 1 and outcome[0].time > world.ledger(plan_id)[5].time
    assert world.executor.submissions[f"{plan_id}:{world.step(plan_id, PREP).step_id}:1"] == 1
    world.service.resume(TENANT, plan_id, MANAGER, "go on")
    world.tick(timedelta(minutes=1))
    assert world.step(plan_id, MEETING).status == StepStatus.SUCCEEDED


def test_a_paused_plan_does_not_resubmit_an_intent_the_service_never_saw() -> None:
    world = World(script={(PREP, 1): Outcome.unreachable(times=1)})
    plan_id = started(world)
    world.tick()  # the submit fails: the intent is recorded, the service never saw it
    assert world.step(plan_id, PREP).status == StepStatus.DISPATCHED
    world.service.pause(TENANT, plan_id, MANAGER, "hold")
    world.run(hours=2, every=timedelta(minutes=10))
    assert world.executor.submissions[f"{plan_id}:{world.step(plan_id, PREP).step_id}:1"] == 1
    world.service.resume(TENANT, plan_id, MANAGER, "go")
    world.tick(timedelta(minutes=1))
    assert world.step(plan_id, PREP).status == StepStatus.SUCCEEDED
    assert world.executions(plan_id, PREP) == 1
    assert any(
        "re-submitted with the same idempotency key" in r for r in reasons(world, plan_id, "note")
    )


def test_expiry_while_paused() -> None:
    world = World()
    plan_id = started(world, expires_in=timedelta(days=5))
    world.tick()
    world.service.pause(TENANT, plan_id, MANAGER, "hold")
    plan = world.plan(plan_id)
    world.tick(HOUR)
    assert world.plan(plan_id).next_due_at == plan.expires_at  # only expiry wakes it
    world.clock.set(plan.expires_at)
    assert world.tick().counts["expired"] == 1
    ended = world.plan(plan_id)
    assert (ended.status, ended.completion_reason) == ("EXPIRED", "expired")
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None
    assert world.ledger(plan_id)[-1].reason == "expires_at reached while paused"


def test_resume_passes_the_gate_again() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    world.service.pause(TENANT, plan_id, MANAGER, "hold")
    world.update_account("acct-1", renewal_status="LOST")
    with pytest.raises(GuardDenied, match="gate"):
        world.service.resume(TENANT, plan_id, MANAGER, "try")
    assert world.plan(plan_id).status == "PAUSED"
    denial = world.ledger(plan_id)[-1]
    assert denial.event.value == "gate_decision" and denial.reason.startswith(
        "gate denies `resume`"
    )
    world.update_account("acct-1", renewal_status="AT_RISK")
    assert world.service.resume(TENANT, plan_id, MANAGER, "try again").status == "ACTIVE"


def test_commands_are_authority_checked_and_ledgered_with_actor_and_reason() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    with pytest.raises(GuardDenied):
        world.service.abort(TENANT, plan_id, AE, "not allowed")  # AEs may not abort
    with pytest.raises(InvalidTransition):
        world.service.resume(TENANT, plan_id, MANAGER, "not paused")
    world.service.pause(TENANT, plan_id, AE, "owner pauses")
    with pytest.raises(InvalidTransition):
        world.service.pause(TENANT, plan_id, AE, "again")
    world.service.abort(TENANT, plan_id, DIRECTOR, "deal lost")
    plan = world.plan(plan_id)
    assert (plan.status, plan.completion_reason) == ("ABORTED", "aborted")
    assert world.store.active_plan_for(TENANT, "acct-1", "RENEWAL_DEFENSE") is None
    tail = [(e.event.value, e.actor, e.reason) for e in world.ledger(plan_id)[-2:]]
    assert tail == [
        ("paused", AE.user_id, "owner pauses"),
        ("aborted", DIRECTOR.user_id, "deal lost"),
    ]
    assert world.tick(DAY).due == 0


# --- ambiguous outcomes --------------------------------------------------------------------


def test_a_timeout_is_reconciled_with_the_same_key() -> None:
    world = World(script={(PREP, 1): Outcome.timeout()})
    plan_id = started(world)
    summary = world.tick()
    assert summary.counts["executor_unavailable"] == 1
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.DISPATCHED, 1)
    summary = world.tick(timedelta(minutes=5))
    assert summary.counts["reconciled"] == 1
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 1)
    key = f"{plan_id}:{step.step_id}:1"
    assert world.executor.effective_executions[key] == 1
    assert world.executor.submissions[key] == 1  # found by lookup, not re-submitted
    outcome = next(e for e in world.ledger(plan_id) if e.event.value == "step_outcome")
    assert outcome.reason == "`PREP_RENEWAL_BRIEF` attempt 1 succeeded (looked up by key)"
    assert outcome.evidence["idempotency_key"] == key


def test_a_pending_outcome_is_polled_until_it_is_known() -> None:
    world = World(script={(PREP, 1): Outcome.pending(for_=timedelta(minutes=12), then="fail")})
    plan_id = started(world)
    world.tick()
    world.tick(timedelta(minutes=5))
    assert world.step(plan_id, PREP).status == StepStatus.DISPATCHED
    world.tick(timedelta(minutes=5))
    world.tick(timedelta(minutes=5))
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)


def test_a_step_that_stays_pending_ends_with_the_plan() -> None:
    world = World(script={(PREP, 1): Outcome.stay_pending()})
    plan_id = started(world, expires_in=timedelta(days=2))
    world.run(hours=50, every=timedelta(hours=2))
    plan = world.plan(plan_id)
    assert plan.status == "EXPIRED"
    assert world.step(plan_id, PREP).status == StepStatus.DISPATCHED
    assert world.executions(plan_id, PREP) == 1


def test_the_executor_being_down_is_noted_once_and_retried_with_the_same_key() -> None:
    world = World(script={(PREP, 1): Outcome.unreachable(times=4)})
    plan_id = started(world)
    for _ in range(5):
        world.tick(timedelta(minutes=5))
    step = world.step(plan_id, PREP)
    assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 1)
    notes = [r for r in reasons(world, plan_id, "note") if "unavailable" in r]
    assert len(notes) == 1


# --- leases and cost -----------------------------------------------------------------------


def test_a_plan_leased_by_another_worker_is_left_alone() -> None:
    world = World()
    plan_id = started(world)
    world.store.acquire_lease(TENANT, plan_id, "other", world.clock.now(), timedelta(minutes=1))
    summary = world.tick()
    assert summary.counts["lease_busy"] == 1
    assert world.plan(plan_id).status == "APPROVED"
    assert world.tick(timedelta(minutes=2)).counts["activated"] == 1  # the lease ran out


def test_a_worker_whose_lease_was_taken_over_discards_its_result() -> None:
    world = World()
    plan_id = started(world)
    rival = Scheduler(
        world.service, world.executor, SchedulerSettings(worker_id="rival", strict=True)
    )

    class SlowService:
        """While the slow worker waits for an answer, its lease runs out and a rival takes over."""

        def submit(self, intent: ActionIntent) -> ExecutionResult:
            # past the lease (60 s) and the in-flight poll (5 min): the rival looks at the plan
            world.clock.advance(timedelta(minutes=6))
            rival.tick(world.clock.now())
            return world.executor.submit(intent)

        def lookup(self, key: str) -> ExecutionResult:
            return world.executor.lookup(key)

    slow = Scheduler(
        world.service,
        SlowService(),
        SchedulerSettings(worker_id="slow", strict=True, max_actions_per_plan=3),
    )
    summary = slow.tick(world.clock.now())
    assert summary.counts["discarded"] == 1
    world.tick(timedelta(minutes=10))
    for action in (PREP, MEETING):
        assert world.step(plan_id, action).status == StepStatus.SUCCEEDED
        assert world.executions(plan_id, action) == 1
    # the rival found the slow worker's intent and reconciled it by key
    outcome = next(e for e in world.ledger(plan_id) if e.event.value == "step_outcome")
    assert outcome.evidence["worker"] == "rival"
    assert "re-submitted with the same key" in outcome.reason


def test_tick_cost_follows_due_plans_not_stored_ones() -> None:
    world = World()
    for i in range(3):
        started(world, account=f"due-{i}")
    for i in range(200):  # drafts and parked plans are not in the due index
        world.service.create(make_plan(f"idle-{i}", at=world.clock.now()), AE)
    reads = _count_reads(world)
    summary = world.tick()
    assert summary.due == 3
    assert reads["due_plans"] == 1
    assert reads["get_plan"] <= 3 * 12


def _count_reads(world: World) -> dict[str, int]:
    counts = {"get_plan": 0, "due_plans": 0}
    store = world.store
    for name in counts:
        method = getattr(store, name)

        def counted(*args, _method=method, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            counts[_name] += 1
            return _method(*args, **kwargs)

        setattr(store, name, counted)
    return counts


def test_a_command_retries_when_the_orchestrator_changed_the_plan_meanwhile() -> None:
    world = World()
    plan_id = started(world)
    world.tick()
    original = world.store.get_plan
    calls = {"n": 0}

    def racing_get(tenant_id: str, pid: str):  # type: ignore[no-untyped-def]
        plan = original(tenant_id, pid)
        calls["n"] += 1
        if calls["n"] == 1:  # the scheduler writes between the command's read and write
            world.store.update_plan(plan, expected_version=plan.version)
        return plan

    world.store.get_plan = racing_get  # type: ignore[method-assign]
    paused = world.service.pause(TENANT, plan_id, MANAGER, "hold")
    assert paused.status == "PAUSED" and calls["n"] == 2
