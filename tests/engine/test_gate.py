"""The policy gate on RENEWAL_DEFENSE: may a plan activate, and exactly why not."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from tests.engine.builders import (
    NOW,
    PLAN_TYPE_FILE,
    acme_facts,
    active_ref,
    all_steps,
    bundle,
    eligible_plan,
    line_of,
    step,
)

from planpolicy.facts import Facts
from planpolicy.gate import Decision, Gate
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import REASON_CODES, Reason

GATE = Gate(bundle())


def decide(plan: RevenuePlanV1, facts: Facts | None = None, *, explain: bool = False) -> Decision:
    return GATE.evaluate(plan, facts or acme_facts(), explain=explain)


def only(decision: Decision, code: str) -> Reason:
    found = [r for r in decision.reasons if r.code == code]
    assert len(found) == 1, [r.code for r in decision.reasons]
    return found[0]


def test_an_eligible_plan_can_activate_and_inherits_its_riskiest_step() -> None:
    decision = decide(eligible_plan())
    assert decision.can_activate
    assert decision.reasons == ()
    assert decision.plan_risk == "HIGH"
    assert decision.bundle_digest == bundle().digest
    assert decision.plan_type_version == 1


def test_a_plan_without_its_high_step_is_medium_risk() -> None:
    plan = eligible_plan(steps=all_steps()[:2])
    assert decide(plan).plan_risk == "MEDIUM"


def test_the_gate_does_not_change_the_plan() -> None:
    plan = eligible_plan()
    before = plan.model_dump()
    decide(plan, explain=True)
    assert plan.model_dump() == before


def test_decisions_are_deterministic() -> None:
    plan, facts = eligible_plan(status="DRAFT"), acme_facts(signals={})
    assert decide(plan, facts) == decide(plan, facts)


def test_an_unknown_plan_type_is_refused_without_a_rule() -> None:
    decision = decide(eligible_plan(plan_type="UPSELL_PUSH"))
    reason = only(decision, "PLAN_TYPE_UNKNOWN")
    assert reason.rule is None
    assert reason.details["known"] == ["RENEWAL_DEFENSE"]
    assert decision.plan_type_version is None


def test_a_plan_for_another_version_of_its_type_is_refused() -> None:
    reason = only(decide(eligible_plan(plan_type_version=2)), "PLAN_TYPE_VERSION_MISMATCH")
    assert reason.rule is not None
    assert (reason.rule.kind, reason.rule.document, reason.rule.version) == (
        "PlanType",
        "RENEWAL_DEFENSE",
        1,
    )
    assert reason.details == {"plan": 2, "bundle": 1}


@pytest.mark.parametrize("status", ["DRAFT", "ACTIVE", "COMPLETED", "ABORTED", "EXPIRED"])
def test_only_approved_or_paused_plans_can_activate(status: str) -> None:
    reason = only(decide(eligible_plan(status=status)), "PLAN_NOT_ACTIVATABLE")
    assert reason.details["activatable"] == ["APPROVED", "PAUSED"]
    assert reason.rule is not None and reason.rule.kind == "Lifecycle"


def test_a_paused_plan_can_resume() -> None:
    plan = eligible_plan(status="PAUSED", activated_at=NOW - timedelta(days=10))
    assert decide(plan).can_activate


def test_a_step_the_plan_type_does_not_allow_names_the_step() -> None:
    odd = step("SEND_DISCOUNT_OFFER")
    reason = only(decide(eligible_plan(steps=[*all_steps(), odd])), "STEP_TYPE_NOT_ALLOWED")
    assert reason.step_id == odd.step_id
    assert "SEND_DISCOUNT_OFFER" in reason.message
    assert reason.details["allowed"] == [
        "PREP_RENEWAL_BRIEF",
        "REQUEST_RENEWAL_MEETING",
        "ESCALATE_SUPPORT_RISK",
    ]


def test_a_duplicated_step_is_refused_at_the_second_occurrence() -> None:
    twice = step("REQUEST_RENEWAL_MEETING")
    reason = only(decide(eligible_plan(steps=[*all_steps(), twice])), "STEP_DUPLICATED")
    assert reason.step_id == twice.step_id


def test_a_missing_required_step_points_at_its_declaration() -> None:
    steps = [s for s in all_steps() if s.action_type != "REQUEST_RENEWAL_MEETING"]
    reason = only(decide(eligible_plan(steps=steps)), "REQUIRED_STEP_MISSING")
    assert reason.step_id is None
    assert reason.rule is not None and reason.rule.location is not None
    assert reason.rule.rule == "REQUEST_RENEWAL_MEETING"
    assert reason.rule.location.file.endswith(PLAN_TYPE_FILE)
    assert reason.rule.location.line == line_of(
        PLAN_TYPE_FILE, "actionType: REQUEST_RENEWAL_MEETING"
    )


def test_step_order_follows_after_constraints_whatever_the_step_ids() -> None:
    brief, meeting, escalate = all_steps()
    reason = only(decide(eligible_plan(steps=[meeting, brief, escalate])), "STEP_ORDER_VIOLATION")
    assert reason.step_id == meeting.step_id
    assert reason.details == {"after": "PREP_RENEWAL_BRIEF"}
    assert "must come after `PREP_RENEWAL_BRIEF`" in reason.message


def test_a_step_that_is_a_human_touch_point_must_be_marked_so() -> None:
    brief, meeting, _ = all_steps()
    unmarked = step("ESCALATE_SUPPORT_RISK", human_touch=False)
    reason = only(decide(eligible_plan(steps=[brief, meeting, unmarked])), "HUMAN_TOUCH_REQUIRED")
    assert reason.step_id == unmarked.step_id
    assert reason.rule is not None and reason.rule.location is not None
    assert reason.rule.location.line == line_of(PLAN_TYPE_FILE, "actionType: ESCALATE_SUPPORT_RISK")


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"tone": "urgent"}, "unknown parameter `tone`"),
        ({"audience": 42}, "parameter `audience` must be string"),
        ({"audience": "x" * 201}, "parameter `audience` is longer than 200 characters"),
    ],
)
def test_step_parameters_must_be_declared_and_fit(
    parameters: dict[str, object], problem: str
) -> None:
    brief = step("PREP_RENEWAL_BRIEF", parameters=parameters)
    plan = eligible_plan(steps=[brief, *all_steps()[1:]])
    reason = only(decide(plan), "STEP_PARAMETER_INVALID")
    assert reason.step_id == brief.step_id
    assert problem in reason.message


def test_expires_at_must_be_in_the_future() -> None:
    reason = only(decide(eligible_plan(expires_at=NOW)), "EXPIRES_AT_NOT_IN_FUTURE")
    assert reason.details["now"] == NOW.isoformat()


def test_expires_at_must_be_within_the_plan_types_maximum_duration() -> None:
    assert decide(eligible_plan(expires_at=NOW + timedelta(days=120))).can_activate
    late = eligible_plan(expires_at=NOW + timedelta(days=120, seconds=1))
    reason = only(decide(late), "EXPIRES_AT_BEYOND_MAX_DURATION")
    assert reason.details["max_duration_days"] == 120
    assert reason.rule is not None and reason.rule.document == "RENEWAL_DEFENSE"


def test_a_resumed_plan_counts_its_duration_from_activation() -> None:
    plan = eligible_plan(
        status="PAUSED",
        activated_at=NOW - timedelta(days=60),
        expires_at=NOW + timedelta(days=90),
    )
    reason = only(decide(plan), "EXPIRES_AT_BEYOND_MAX_DURATION")
    assert reason.details["start"] == (NOW - timedelta(days=60)).isoformat()


def test_another_active_plan_in_the_scope_is_a_conflict_rejected_not_queued() -> None:
    decision = decide(eligible_plan(), acme_facts(active=[active_ref("rd-first")]))
    reason = only(decision, "CONFLICT_ACTIVE_PLAN")
    assert not decision.can_activate
    assert reason.details["holder"] == "rd-first"
    assert reason.rule is not None and reason.rule.kind == "ConflictPolicy"


@pytest.mark.parametrize(
    "other",
    [
        {"tenant_id": "southwind"},
        {"account_id": "globex"},
        {"plan_type": "UPSELL_PUSH"},
        {"status": "PAUSED"},
    ],
)
def test_plans_outside_the_scope_or_not_occupying_it_do_not_conflict(other: dict[str, str]) -> None:
    assert decide(eligible_plan(), acme_facts(active=[active_ref(**other)])).can_activate


def test_a_plan_does_not_conflict_with_itself() -> None:
    plan = eligible_plan()
    assert decide(plan, acme_facts(active=[active_ref(plan.plan_id)])).can_activate


def test_a_false_eligibility_condition_names_the_rule_its_location_and_inputs() -> None:
    facts = acme_facts(
        account={
            "account_id": "acme",
            "renewal_date": NOW + timedelta(days=200),
            "renewal": {"status": "AT_RISK"},
        }
    )
    reason = only(decide(eligible_plan(), facts), "ELIGIBILITY_NOT_MET")
    assert reason.rule is not None and reason.rule.location is not None
    assert reason.rule.rule == "renewal_within_window"
    assert reason.rule.location.line == line_of(PLAN_TYPE_FILE, "expr: |")
    assert (
        reason.details["inputs"]["account.renewal_date"] == (NOW + timedelta(days=200)).isoformat()
    )
    assert reason.details["inputs"]["now"] == NOW.isoformat()


def test_a_missing_context_value_denies_naming_the_expression_and_the_value() -> None:
    facts = acme_facts(account={"account_id": "acme", "renewal": {"status": "OPEN"}})
    reason = only(decide(eligible_plan(), facts), "RULE_EVALUATION_ERROR")
    assert reason.rule is not None and reason.rule.rule == "renewal_within_window"
    assert "missing value `account.renewal_date`" in reason.message
    assert reason.details["missing"] == ["account.renewal_date"]
    assert reason.details["expression"].startswith("account.renewal_date > now")


def test_a_step_condition_that_cannot_be_evaluated_denies_at_its_step() -> None:
    plan = eligible_plan()
    reason = only(decide(plan, acme_facts(signals={})), "RULE_EVALUATION_ERROR")
    assert reason.step_id == plan.step_by_action("ESCALATE_SUPPORT_RISK").step_id  # type: ignore[union-attr]
    assert reason.rule is not None and reason.rule.rule == "ESCALATE_SUPPORT_RISK.when"
    assert "`signals.open_p1_tickets`" in reason.message


def test_a_false_step_condition_does_not_deny() -> None:
    # The step is skipped at dispatch time instead.
    assert decide(eligible_plan(), acme_facts(signals={"open_p1_tickets": 0})).can_activate


def test_a_value_of_the_wrong_type_denies() -> None:
    facts = acme_facts(
        account={"account_id": "acme", "renewal_date": "next spring", "renewal": {"status": "OPEN"}}
    )
    reason = only(decide(eligible_plan(), facts), "RULE_EVALUATION_ERROR")
    assert reason.rule is not None and reason.rule.rule == "renewal_within_window"


def test_a_context_value_cel_cannot_hold_denies_instead_of_raising() -> None:
    facts = acme_facts(signals={"open_p1_tickets": 2**70})
    decision = decide(eligible_plan(), facts)
    assert only(decision, "CONTEXT_INVALID").message.startswith("the context cannot be given")
    assert not decision.can_activate


def test_a_context_about_another_account_is_refused() -> None:
    facts = acme_facts(
        account={
            "account_id": "globex",
            "renewal_date": NOW + timedelta(days=30),
            "renewal": {"status": "OPEN"},
        }
    )
    reason = only(decide(eligible_plan(), facts), "CONTEXT_INVALID")
    assert reason.details == {"context_account": "globex", "plan_account": "acme"}


def test_a_naive_now_is_taken_as_utc() -> None:
    facts = acme_facts(now=NOW.replace(tzinfo=None))
    assert facts.now == NOW
    assert decide(eligible_plan(), facts).can_activate


def test_every_reason_is_reported_not_only_the_first() -> None:
    brief = all_steps()[0]
    plan = eligible_plan(
        status="DRAFT",
        plan_type_version=7,
        expires_at=NOW + timedelta(days=365),
        steps=[step("ESCALATE_SUPPORT_RISK"), brief, step("SEND_DISCOUNT_OFFER")],
    )
    facts = acme_facts(
        account={
            "account_id": "acme",
            "renewal_date": NOW + timedelta(days=30),
            "renewal": {"status": "CHURNED"},
        },
        signals={},
        active=[active_ref()],
    )
    decision = decide(plan, facts)
    assert decision.codes == {
        "PLAN_NOT_ACTIVATABLE",
        "PLAN_TYPE_VERSION_MISMATCH",
        "STEP_TYPE_NOT_ALLOWED",
        "STEP_ORDER_VIOLATION",
        "HUMAN_TOUCH_REQUIRED",
        "REQUIRED_STEP_MISSING",
        "EXPIRES_AT_BEYOND_MAX_DURATION",
        "CONFLICT_ACTIVE_PLAN",
        "ELIGIBILITY_NOT_MET",
        "RULE_EVALUATION_ERROR",
    }
    assert all(r.code in REASON_CODES for r in decision.reasons)
    assert all(
        r.message == r.message.strip() and not r.message.endswith(".") for r in decision.reasons
    )


def test_every_reason_with_a_rule_carries_document_version_and_file_line() -> None:
    plan = eligible_plan(status="DRAFT", steps=[step("ESCALATE_SUPPORT_RISK")])
    decision = decide(plan, acme_facts(signals={}, active=[active_ref()]))
    assert decision.reasons
    for reason in decision.reasons:
        ref = reason.rule
        assert ref is not None and ref.location is not None, reason.code
        assert ref.version >= 1 and ref.document
        assert reason.as_dict()["location"] == str(ref.location)
        assert reason.as_dict()["rule"]["line"] == ref.location.line


def test_explain_traces_every_rule_with_inputs_and_result() -> None:
    decision = decide(eligible_plan(), explain=True)
    rules = [t.rule for t in decision.trace]
    assert rules == [
        "plan_status",
        "plan_type_version",
        "steps",
        "expires_at",
        "conflict",
        "renewal_within_window",
        "renewal_still_open",
        "ESCALATE_SUPPORT_RISK.when",
    ]
    by_rule = {t.rule: t for t in decision.trace}
    assert by_rule["renewal_still_open"].result == "true"
    assert by_rule["renewal_still_open"].inputs == {"account.renewal.status": "AT_RISK"}
    assert by_rule["ESCALATE_SUPPORT_RISK.when"].inputs == {"signals.open_p1_tickets": 2}
    assert by_rule["steps"].inputs["plan_risk"] == "HIGH"
    assert all(t.ref is not None for t in decision.trace)
    assert decision.as_dict(explain=True)["trace"][5]["location"].endswith(
        f"{PLAN_TYPE_FILE}:{line_of(PLAN_TYPE_FILE, 'expr: |')}:13"
    )


def test_step_ids_are_the_plans_own_not_positions() -> None:
    fixed = uuid.UUID("00000000-0000-4000-8000-000000000001")
    steps = [step("ESCALATE_SUPPORT_RISK", step_id=fixed, human_touch=True), *all_steps()[:2]]
    reason = only(decide(eligible_plan(steps=steps)), "STEP_ORDER_VIOLATION")
    assert reason.step_id == fixed
