"""The rules proposer on the example accounts gives the expected drafts (or says why not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.proposals.conftest import request_for

from planpolicy import PolicyBundle
from planpolicy.proposal import review
from planpolicy.proposers.rules import RulesProposer, render_value

RULES = RulesProposer()

EXPECTED = {
    "acme": (
        ["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK"],
        "HIGH",
        "Renew Acme Corp before 2025-05-15.",
        "The renewal of Acme Corp falls due on 2025-05-15 with health at 41; "
        "open priority-1 tickets: 2.",
    ),
    "globex": (
        ["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING"],
        "MEDIUM",
        "Renew Globex before 2025-04-30.",
        "The renewal of Globex falls due on 2025-04-30 with health at 55; "
        "open priority-1 tickets: 0.",
    ),
    "umbrella": (
        ["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK"],
        "HIGH",
        "Renew Umbrella Corp before 2025-04-20.",
        "The renewal of Umbrella Corp falls due on 2025-04-20 with health at 38; "
        "open priority-1 tickets: 1.",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_accounts_give_the_expected_drafts(bundle: PolicyBundle, name: str) -> None:
    steps, risk, objective, rationale = EXPECTED[name]
    request = request_for(name)
    result = review(bundle, request, RULES, RULES.propose(bundle, request))
    assert result.outcome == "drafted", result.reasons
    plan = result.plan
    assert plan is not None
    assert plan.status == "DRAFT"
    assert [s.action_type for s in plan.steps] == steps
    assert bundle.plan_risk(plan) == risk
    assert plan.objective == objective
    assert result.audit.rationale == rationale
    assert plan.owner == request.owner and plan.created_by == "proposer:rules"
    assert plan.tenant_id == "northwind" and plan.account_id == name
    assert plan.expires_at == request.now + timedelta(days=90)
    assert plan.steps[0].parameters == {
        "audience": objective[6:].split(" before")[0] + " executive sponsor"
    }
    # Human touch is where the policy wants it; nothing is approved.
    assert [s.human_touch for s in plan.steps] == [a == "ESCALATE_SUPPORT_RISK" for a in steps]
    assert plan.approved_by is None and plan.bundle_digest is None
    assert result.decision is not None and result.decision.can_activate
    assert result.audit.proposer == "rules" and result.audit.model_id is None
    assert result.audit.bundle_digest == bundle.digest


def test_a_healthy_account_gets_no_proposal(bundle: PolicyBundle) -> None:
    request = request_for("initech")
    output = RULES.propose(bundle, request)
    assert output.candidate is None
    result = review(bundle, request, RULES, output)
    assert result.outcome == "rejected" and result.plan is None
    [reason] = result.reasons
    assert reason.code == "PROPOSAL_CONDITION_FALSE"
    assert "`health_below_60` is false" in reason.message
    assert reason.location is not None
    assert "plan_types/renewal_defense.yaml:" in reason.location


def test_the_rules_are_deterministic(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    first, second = RULES.propose(bundle, request), RULES.propose(bundle, request)
    assert first.candidate == second.candidate
    assert review(bundle, request, RULES, first).audit.output_digest == (
        review(bundle, request, RULES, second).audit.output_digest
    )


def test_a_renewal_outside_the_window_is_not_proposed(bundle: PolicyBundle) -> None:
    request = request_for("acme", now="2024-11-01T00:00:00Z")
    output = RULES.propose(bundle, request)
    assert output.candidate is None
    assert [r.code for r in output.reasons] == ["PROPOSAL_CONDITION_FALSE"]
    assert "renewal_due_soon" in output.reasons[0].message


def test_a_missing_value_fails_closed_naming_the_rule(bundle: PolicyBundle) -> None:
    data = request_for("acme").as_data()
    del data["account"]["health_score"]
    request = request_for("acme", account=data["account"])
    output = RULES.propose(bundle, request)
    assert output.candidate is None
    [reason] = output.reasons
    assert reason.code == "RULE_EVALUATION_ERROR"
    assert "`health_below_60`" in reason.message


def test_a_missing_signal_for_an_optional_step_fails_closed(bundle: PolicyBundle) -> None:
    request = request_for("acme", signals={})
    output = RULES.propose(bundle, request)
    assert output.candidate is None
    assert [r.code for r in output.reasons] == ["RULE_EVALUATION_ERROR"]
    assert "ESCALATE_SUPPORT_RISK.include" in output.reasons[0].message


def test_goals_limit_the_plan_types(bundle: PolicyBundle) -> None:
    request = request_for("acme", goals=[{"plan_type": "UPSELL_PUSH"}])
    output = RULES.propose(bundle, request)
    assert output.candidate is None
    assert [r.code for r in output.reasons] == ["PROPOSAL_NOT_APPLICABLE"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (41, "41"),
        (480000.0, "480000"),
        (-0.18, "-0.18"),
        (datetime(2025, 5, 15, tzinfo=UTC), "2025-05-15"),
        (datetime(2025, 5, 15, 9, 30, tzinfo=UTC), "2025-05-15T09:30:00Z"),
        (timedelta(days=3), "3 days"),
        ("text", "text"),
    ],
)
def test_placeholder_values_as_text(value: object, text: str) -> None:
    assert render_value(value) == text
