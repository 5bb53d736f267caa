"""Authority: who may approve, pause, resume and abort a plan, by its risk."""

from __future__ import annotations

import pytest
from tests.engine.builders import all_steps, bundle, eligible_plan

from planpolicy.authority import Actor, check_authority
from planpolicy.plan import RevenuePlanV1

HIGH = eligible_plan(status="DRAFT")
MEDIUM = eligible_plan(status="DRAFT", steps=all_steps()[:2])


def actor(user: str, *roles: str) -> Actor:
    return Actor(user, frozenset(roles))


def codes(plan: RevenuePlanV1, action: str, who: Actor) -> list[str]:
    return [r.code for r in check_authority(bundle(), plan, action, who).reasons]


def test_a_director_approves_any_risk() -> None:
    decision = check_authority(bundle(), HIGH, "approve", actor("dana", "revenue_director"))
    assert decision.allowed
    assert decision.plan_risk == "HIGH"
    assert decision.basis == "role `revenue_director`"
    assert decision.reasons == ()


def test_a_manager_approves_up_to_medium_risk() -> None:
    assert check_authority(bundle(), MEDIUM, "approve", actor("mia", "revenue_manager")).allowed
    decision = check_authority(bundle(), HIGH, "approve", actor("mia", "revenue_manager"))
    assert not decision.allowed
    (reason,) = decision.reasons
    assert reason.code == "AUTHORITY_ROLE_NOT_ALLOWED"
    assert reason.details["allowed_roles"] == ["revenue_director"]
    assert reason.details["plan_risk"] == "HIGH"
    assert "requires `revenue_director`" in reason.message
    assert reason.rule is not None and reason.rule.kind == "AuthorityPolicy"


def test_the_proposer_may_not_approve_their_own_plan_whatever_their_role() -> None:
    assert codes(HIGH, "approve", actor("paul", "revenue_director")) == ["AUTHORITY_SELF_APPROVAL"]


def test_a_system_actor_never_approves() -> None:
    robot = Actor("orchestrator", frozenset({"revenue_director"}), human=False)
    assert codes(HIGH, "approve", robot) == ["AUTHORITY_NOT_HUMAN"]
    assert codes(HIGH, "approve", Actor.system("proposer")) == [
        "AUTHORITY_NOT_HUMAN",
        "AUTHORITY_ROLE_NOT_ALLOWED",
    ]


def test_the_owner_may_pause_and_resume_without_a_role() -> None:
    owner = actor("alice")
    assert check_authority(bundle(), HIGH, "pause", owner).basis == "owner"
    assert check_authority(bundle(), HIGH, "resume", owner).allowed
    assert codes(HIGH, "abort", owner) == ["AUTHORITY_ROLE_NOT_ALLOWED"]
    assert codes(HIGH, "approve", owner) == ["AUTHORITY_ROLE_NOT_ALLOWED"]


@pytest.mark.parametrize(
    ("action", "role", "allowed"),
    [
        ("pause", "account_executive", True),
        ("resume", "account_executive", False),
        ("resume", "revenue_manager", True),
        ("abort", "revenue_manager", True),
        ("abort", "account_executive", False),
        ("approve_step", "revenue_manager", True),
        ("approve_step", "account_executive", False),
    ],
)
def test_grants_by_action_and_role(action: str, role: str, allowed: bool) -> None:
    assert check_authority(bundle(), HIGH, action, actor("x", role)).allowed is allowed


def test_an_unknown_role_is_granted_nothing() -> None:
    assert codes(MEDIUM, "approve", actor("x", "intern")) == ["AUTHORITY_ROLE_NOT_ALLOWED"]
