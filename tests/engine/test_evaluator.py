"""The state evaluator: objective met, all steps done, expired; fail closed on errors."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.builders import NOW, RENEWAL, acme_facts, all_steps, bundle, eligible_plan

from planpolicy.evaluator import ALL_STEPS_DONE, EXPIRED, OBJECTIVE_MET, StateEvaluator
from planpolicy.plan import StepStatus

EVALUATOR = StateEvaluator(bundle())
ACTIVE = eligible_plan(status="ACTIVE", activated_at=NOW)


def renewal(status: str) -> dict[str, object]:
    return {"account_id": "acme", "renewal_date": RENEWAL, "renewal": {"status": status}}


def test_an_open_renewal_changes_nothing() -> None:
    outcome = EVALUATOR.evaluate(ACTIVE, acme_facts(), NOW + timedelta(days=1))
    assert (outcome.status, outcome.reason, outcome.errors) == (None, None, ())
    assert not outcome.terminal


def test_a_renewed_account_completes_the_plan() -> None:
    outcome = EVALUATOR.evaluate(ACTIVE, acme_facts(account=renewal("RENEWED")), NOW)
    assert (outcome.status, outcome.reason) == ("COMPLETED", OBJECTIVE_MET)
    assert outcome.met == ("renewal_closed_won",)
    assert outcome.as_dict()["met"] == ["renewal_closed_won"]


def test_the_plan_expires_at_expires_at() -> None:
    facts = acme_facts()
    assert (
        EVALUATOR.evaluate(ACTIVE, facts, ACTIVE.expires_at - timedelta(seconds=1)).status is None
    )
    outcome = EVALUATOR.evaluate(ACTIVE, facts, ACTIVE.expires_at)
    assert (outcome.status, outcome.reason) == ("EXPIRED", EXPIRED)


def test_all_steps_done_does_not_complete_renewal_defense() -> None:
    # RENEWAL_DEFENSE sets completeWhenAllStepsDone: false: only the objective completes it.
    done = [s.model_copy(update={"status": StepStatus.SUCCEEDED}) for s in all_steps()]
    plan = eligible_plan(status="ACTIVE", activated_at=NOW, steps=done)
    assert EVALUATOR.evaluate(plan, acme_facts(), NOW).status is None
    assert ALL_STEPS_DONE == "all_steps_done"


def test_an_objective_that_cannot_be_evaluated_never_completes_the_plan() -> None:
    outcome = EVALUATOR.evaluate(ACTIVE, acme_facts(account={"account_id": "acme"}), NOW)
    assert outcome.status is None
    (error,) = outcome.errors
    assert error.code == "RULE_EVALUATION_ERROR"
    assert error.rule is not None and error.rule.rule == "renewal_closed_won"


def test_expiry_still_applies_when_the_objective_errors() -> None:
    facts = acme_facts(account={"account_id": "acme"})
    outcome = EVALUATOR.evaluate(ACTIVE, facts, ACTIVE.expires_at + timedelta(days=1))
    assert outcome.status == "EXPIRED"
    assert [e.code for e in outcome.errors] == ["RULE_EVALUATION_ERROR"]


def test_an_unconvertible_context_is_reported_not_raised() -> None:
    outcome = EVALUATOR.evaluate(ACTIVE, acme_facts(signals={"open_p1_tickets": 2**70}), NOW)
    assert outcome.status is None
    assert [e.code for e in outcome.errors] == ["CONTEXT_INVALID"]


def test_an_unknown_plan_type_only_expires() -> None:
    plan = eligible_plan(plan_type="UPSELL_PUSH", status="ACTIVE")
    outcome = EVALUATOR.evaluate(plan, acme_facts(account=renewal("RENEWED")), plan.expires_at)
    assert outcome.status == "EXPIRED"
    assert [e.code for e in outcome.errors] == ["PLAN_TYPE_UNKNOWN"]


def test_a_naive_now_is_utc() -> None:
    outcome = EVALUATOR.evaluate(ACTIVE, acme_facts(), ACTIVE.expires_at.replace(tzinfo=None))
    assert outcome.status == "EXPIRED"
