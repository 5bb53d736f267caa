"""The lifecycle machine: explicit transitions, typed errors, guards honoured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.engine.builders import NOW, acme_facts, active_ref, bundle, eligible_plan

from planpolicy.authority import Actor, check_authority
from planpolicy.gate import Gate
from planpolicy.lifecycle import (
    GuardDenied,
    InvalidTransition,
    LifecycleMachine,
    decide_transition,
    machine_for,
)

DIRECTOR = Actor("dana", frozenset({"revenue_director"}))
MANAGER = Actor("mia", frozenset({"revenue_manager"}))


@pytest.fixture
def machine() -> LifecycleMachine:
    found = machine_for(bundle(), "RENEWAL_DEFENSE")
    assert found is not None
    return found


def test_the_machine_follows_the_bundled_lifecycle(machine: LifecycleMachine) -> None:
    assert machine.allowed_triggers("DRAFT") == ["approve", "abort"]
    assert machine.allowed_triggers("ACTIVE") == [
        "pause",
        "abort",
        "complete",
        "expire",
        "adapt_pause",
        "adapt_abort",
    ]
    assert machine.guards("APPROVED", "activate") == {"gate"}
    assert machine.guards("PAUSED", "resume") == {"authority", "gate"}
    assert machine.is_terminal("COMPLETED") and not machine.is_terminal("PAUSED")


def test_machines_are_built_once_per_lifecycle() -> None:
    assert machine_for(bundle(), "RENEWAL_DEFENSE") is machine_for(bundle(), "RENEWAL_DEFENSE")
    assert machine_for(bundle(), "UPSELL_PUSH") is None


def test_an_invalid_trigger_raises_a_typed_error_naming_state_and_trigger(
    machine: LifecycleMachine,
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        machine.fire("DRAFT", "activate")
    assert (caught.value.state, caught.value.trigger) == ("DRAFT", "activate")
    assert caught.value.allowed == ["approve", "abort"]
    assert (
        str(caught.value)
        == "cannot `activate` a plan in state `DRAFT` (allowed: `approve`, `abort`)"
    )
    assert not caught.value.retryable


@pytest.mark.parametrize("trigger", ["to_ACTIVE", "to_APPROVED", "launch", "trigger", "state"])
def test_no_automatic_or_unknown_transitions(machine: LifecycleMachine, trigger: str) -> None:
    with pytest.raises(InvalidTransition):
        machine.fire("DRAFT", trigger)


@pytest.mark.parametrize("state", ["COMPLETED", "ABORTED", "EXPIRED"])
def test_terminal_states_are_final(machine: LifecycleMachine, state: str) -> None:
    assert machine.allowed_triggers(state) == []
    with pytest.raises(InvalidTransition):
        machine.fire(state, "abort", authority=None)


def test_an_authority_guard_without_a_decision_refuses(machine: LifecycleMachine) -> None:
    with pytest.raises(GuardDenied) as caught:
        machine.fire("DRAFT", "approve")
    assert caught.value.guard == "authority"
    assert "no decision was supplied" in str(caught.value)


def test_approve_follows_the_authority_decision(machine: LifecycleMachine) -> None:
    plan = eligible_plan(status="DRAFT")
    allowed = check_authority(bundle(), plan, "approve", DIRECTOR)
    assert machine.fire("DRAFT", "approve", authority=allowed) == "APPROVED"
    refused = check_authority(bundle(), plan, "approve", MANAGER)
    with pytest.raises(GuardDenied) as caught:
        machine.fire("DRAFT", "approve", authority=refused)
    assert [r.code for r in caught.value.reasons] == ["AUTHORITY_ROLE_NOT_ALLOWED"]


def test_an_authority_decision_for_another_action_does_not_count(machine: LifecycleMachine) -> None:
    pause = check_authority(bundle(), eligible_plan(), "pause", Actor("alice"))
    assert pause.allowed
    with pytest.raises(GuardDenied, match="decision is for `pause`, not `approve`"):
        machine.fire("DRAFT", "approve", authority=pause)


def test_activation_happens_only_when_the_gate_allows(machine: LifecycleMachine) -> None:
    plan = eligible_plan()
    gate = Gate(bundle())
    assert machine.fire("APPROVED", "activate", gate=gate.evaluate(plan, acme_facts())) == "ACTIVE"
    with pytest.raises(GuardDenied) as caught:
        machine.fire("APPROVED", "activate")
    assert caught.value.guard == "gate"
    denied = gate.evaluate(plan, acme_facts(active=[active_ref()]))
    with pytest.raises(GuardDenied) as caught:
        machine.fire("APPROVED", "activate", gate=denied)
    assert [r.code for r in caught.value.reasons] == ["CONFLICT_ACTIVE_PLAN"]


def test_resume_needs_both_authority_and_the_gate(machine: LifecycleMachine) -> None:
    plan = eligible_plan(status="PAUSED", activated_at=NOW - timedelta(days=3))
    owner = check_authority(bundle(), plan, "resume", Actor("alice"))
    decision = Gate(bundle()).evaluate(plan, acme_facts())
    assert machine.fire("PAUSED", "resume", authority=owner, gate=decision) == "ACTIVE"
    with pytest.raises(GuardDenied, match="`gate` guard"):
        machine.fire("PAUSED", "resume", authority=owner)
    with pytest.raises(GuardDenied, match="`authority` guard"):
        machine.fire("PAUSED", "resume", gate=decision)


def test_unguarded_transitions_need_no_decision(machine: LifecycleMachine) -> None:
    assert machine.fire("ACTIVE", "complete") == "COMPLETED"
    assert machine.fire("PAUSED", "expire") == "EXPIRED"


def test_decide_transition_returns_values_instead_of_raising() -> None:
    draft = eligible_plan(status="DRAFT")
    ok = decide_transition(bundle(), draft, "approve", actor=DIRECTOR)
    assert (ok.allowed, ok.source, ok.dest) == (True, "DRAFT", "APPROVED")
    self_approval = decide_transition(
        bundle(), draft, "approve", actor=Actor("paul", DIRECTOR.roles)
    )
    assert (self_approval.error, self_approval.guard) == ("guard_denied", "authority")
    assert [r.code for r in self_approval.reasons] == ["AUTHORITY_SELF_APPROVAL"]
    invalid = decide_transition(bundle(), draft, "activate", facts=acme_facts())
    assert invalid.error == "invalid_transition" and invalid.dest is None
    assert invalid.as_dict()["allowed"] is False


def test_decide_transition_evaluates_the_gate_for_activation() -> None:
    outcome = decide_transition(bundle(), eligible_plan(), "activate", facts=acme_facts())
    assert outcome.allowed and outcome.dest == "ACTIVE"
    assert outcome.gate is not None and outcome.gate.can_activate
    refused = decide_transition(bundle(), eligible_plan(), "activate")
    assert refused.guard == "gate"


def test_decide_transition_rejects_an_unknown_plan_type() -> None:
    with pytest.raises(KeyError):
        decide_transition(bundle(), eligible_plan(plan_type="UPSELL_PUSH"), "approve")


def test_the_machine_never_imports_callbacks_from_yaml(machine: LifecycleMachine) -> None:
    # Triggers are fired on a throwaway token; nothing named in YAML becomes a callable.
    internal = machine._machine
    assert internal.auto_transitions is False
    assert internal.ignore_invalid_triggers is False
    for event in internal.events.values():
        for transitions in event.transitions.values():
            for transition in transitions:
                assert transition.prepare == transition.before == transition.after == []
                assert transition.conditions == []


def test_fire_gives_what_the_transitions_machine_gives_for_every_state_and_trigger(
    machine: LifecycleMachine,
) -> None:
    """``fire`` looks destinations up; the table agrees with running the machine itself."""
    from transitions import MachineError

    from planpolicy.lifecycle import _Token

    lifecycle = machine.lifecycle
    triggers = {t.trigger for t in lifecycle.transitions} | {"nonsense"}
    for state in lifecycle.states:
        for trigger in sorted(triggers):
            token = _Token()
            machine._machine.add_model(token, initial=state)
            try:
                token.trigger(trigger)  # type: ignore[attr-defined]
                expected: str | None = token.state
            except (MachineError, AttributeError):
                expected = None
            finally:
                machine._machine.remove_model(token)
            try:
                spec, dest = machine._entry(state, trigger)
            except InvalidTransition:
                assert expected is None, (state, trigger)
                continue
            assert dest == expected == spec.dest, (state, trigger)
