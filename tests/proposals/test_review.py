"""Whatever a proposer returns is validated, bounded, forced to DRAFT and gated."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.proposals.conftest import request_for
from tests.proposals.support import Scripted, candidate, counter_ids

from planpolicy import PolicyBundle
from planpolicy.facts import ActivePlanRef
from planpolicy.proposal import (
    LIMITS,
    ProposalInputError,
    ProposalRequest,
    ProposerError,
    ProposerOutput,
    review,
)


def judge(bundle: PolicyBundle, answer: Any, **options: Any) -> Any:
    proposer = Scripted(answer)
    request = options.pop("request", None) or request_for("acme")
    output = (
        answer
        if isinstance(answer, ProposerOutput | ProposerError)
        else ProposerOutput(answer, answer)
    )
    return review(bundle, request, proposer, output, **options)


def codes(result: Any) -> list[str]:
    return [r.code for r in result.reasons]


def test_a_good_candidate_becomes_a_draft(bundle: PolicyBundle) -> None:
    given_ids = [str(uuid.uuid4()) for _ in range(3)]
    answer = candidate()
    for step, step_id in zip(answer["steps"], given_ids, strict=True):
        step["step_id"] = step_id
    result = judge(bundle, {**answer, "plan_id": "mine", "status": "DRAFT"})
    assert result.drafted and result.reasons == ()
    plan = result.plan
    assert plan.status == "DRAFT" and plan.plan_id != "mine"
    assert {str(s.step_id) for s in plan.steps}.isdisjoint(given_ids)
    assert len({s.step_id for s in plan.steps}) == 3
    assert all(s.status == "PENDING" and s.attempts == 0 for s in plan.steps)
    assert plan.created_by == "proposer:scripted" and plan.owner == "alice"
    assert result.audit.model_id == "m-1"
    assert result.audit.input_digest.startswith("sha256:")
    assert result.audit.output_digest.startswith("sha256:")


def test_ids_come_from_the_id_source(bundle: PolicyBundle) -> None:
    result = judge(bundle, candidate(), new_id=counter_ids())
    assert result.audit.proposal_id == str(uuid.UUID(int=1))
    assert [s.step_id.int for s in result.plan.steps] == [2, 3, 4]
    assert result.plan.plan_id == str(uuid.UUID(int=5))


def test_human_touch_is_forced_where_the_policy_requires_it(bundle: PolicyBundle) -> None:
    answer = candidate()
    answer["steps"][2]["human_touch"] = False
    answer["steps"][0]["human_touch"] = True  # a proposer may add touch points
    plan = judge(bundle, answer).plan
    assert [s.human_touch for s in plan.steps] == [True, False, True]


@pytest.mark.parametrize("status", ["APPROVED", "ACTIVE", "COMPLETED", "draft"])
def test_a_status_other_than_draft_rejects(bundle: PolicyBundle, status: str) -> None:
    result = judge(bundle, candidate(status=status))
    assert not result.drafted and result.plan is None
    assert codes(result) == ["PROPOSAL_FIELD_FORBIDDEN"]
    assert "proposals are always DRAFT" in result.reasons[0].message


@pytest.mark.parametrize(
    "field",
    [
        "approved_by",
        "approved_at",
        "activated_at",
        "bundle_digest",
        "created_by",
        "owner",
        "version",
    ],
)
def test_lifecycle_fields_reject(bundle: PolicyBundle, field: str) -> None:
    result = judge(bundle, candidate(**{field: "x"}))
    assert codes(result) == ["PROPOSAL_FIELD_FORBIDDEN"]


def test_step_progress_fields_reject(bundle: PolicyBundle) -> None:
    answer = candidate()
    answer["steps"][2] |= {"human_approved_by": "cro", "status": "SUCCEEDED", "attempts": 1}
    assert codes(judge(bundle, answer)) == ["PROPOSAL_FIELD_FORBIDDEN"] * 3


def test_another_tenant_or_account_rejects(bundle: PolicyBundle) -> None:
    assert codes(judge(bundle, candidate(tenant_id="northwind", account_id="acme"))) == []
    result = judge(bundle, candidate(tenant_id="southwind", account_id="globex"))
    assert codes(result) == ["PROPOSAL_FIELD_FORBIDDEN"] * 2


def test_unknown_fields_and_wrong_shapes_reject_with_every_reason(bundle: PolicyBundle) -> None:
    answer: dict[str, Any] = candidate(expires_in_days="soon", approve=True)
    answer["steps"] = [{"action_type": 7}, "PREP", {"action_type": "X", "parameters": []}]
    result = judge(bundle, answer)
    assert codes(result) == ["PROPOSAL_MALFORMED"] * 5
    messages = " | ".join(r.message for r in result.reasons)
    assert "unknown field `approve`" in messages and "expires_in_days" in messages


@pytest.mark.parametrize("answer", [None, "a plan", 42, ["steps"]])
def test_a_non_mapping_rejects(bundle: PolicyBundle, answer: Any) -> None:
    result = judge(bundle, ProposerOutput(answer, answer))
    assert not result.drafted
    assert codes(result) in (["PROPOSAL_MALFORMED"], ["PROPOSAL_NOT_APPLICABLE"])


def test_unknown_step_type_rejects_with_the_gates_reason(bundle: PolicyBundle) -> None:
    answer = candidate()
    answer["steps"].append({"action_type": "SEND_DISCOUNT_OFFER"})
    result = judge(bundle, answer)
    assert codes(result) == ["STEP_TYPE_NOT_ALLOWED"]
    assert result.reasons[0].location is not None


def test_structural_gate_reasons_reject(bundle: PolicyBundle) -> None:
    answer = candidate()
    answer["steps"] = [
        {"action_type": "ESCALATE_SUPPORT_RISK"},
        {"action_type": "PREP_RENEWAL_BRIEF", "parameters": {"audience": 3, "tone": "x"}},
    ]
    assert codes(judge(bundle, answer)) == [
        "STEP_ORDER_VIOLATION",
        "STEP_PARAMETER_INVALID",
        "STEP_PARAMETER_INVALID",
        "REQUIRED_STEP_MISSING",
    ]


def test_unknown_plan_type_rejects(bundle: PolicyBundle) -> None:
    assert codes(judge(bundle, candidate(plan_type="UPSELL_PUSH"))) == ["PLAN_TYPE_UNKNOWN"]


def test_a_plan_type_outside_the_goals_rejects(bundle: PolicyBundle) -> None:
    request = request_for("acme", goals=[{"plan_type": "UPSELL_PUSH"}])
    result = judge(bundle, candidate(), request=request)
    assert codes(result) == ["PROPOSAL_PLAN_TYPE_NOT_REQUESTED"]


def test_expiry_is_bounded_by_the_plan_type(bundle: PolicyBundle) -> None:
    assert judge(bundle, candidate(expires_in_days=120)).drafted
    assert codes(judge(bundle, candidate(expires_in_days=121))) == [
        "EXPIRES_AT_BEYOND_MAX_DURATION"
    ]
    assert codes(judge(bundle, candidate(expires_in_days=0))) == ["PROPOSAL_MALFORMED"]
    assert codes(judge(bundle, candidate(expires_in_days=True))) == ["PROPOSAL_MALFORMED"]


def test_sizes_are_bounded(bundle: PolicyBundle) -> None:
    long = candidate(rationale="x" * (LIMITS.rationale + 1), objective="y" * (LIMITS.objective + 1))
    assert codes(judge(bundle, long)) == ["PROPOSAL_TOO_LARGE"] * 2
    many = candidate(steps=[{"action_type": "PREP_RENEWAL_BRIEF"}] * (LIMITS.steps + 1))
    assert codes(judge(bundle, many)) == ["PROPOSAL_TOO_LARGE"]
    answer = candidate()
    answer["steps"][0]["parameters"] = {"audience": "z" * (LIMITS.parameter_text + 1)}
    assert codes(judge(bundle, answer)) == ["PROPOSAL_TOO_LARGE"]
    answer["steps"][0]["parameters"] = {f"p{i}": "v" for i in range(LIMITS.parameters + 1)}
    assert codes(judge(bundle, answer)) == ["PROPOSAL_TOO_LARGE"]
    # The plan type's own bound (200 characters) is the gate's.
    answer["steps"][0]["parameters"] = {"audience": "z" * 201}
    assert codes(judge(bundle, answer)) == ["STEP_PARAMETER_INVALID"]


def test_a_huge_raw_output_rejects(bundle: PolicyBundle) -> None:
    raw = {"padding": "x" * LIMITS.output_bytes, "candidate": candidate()}
    result = judge(bundle, ProposerOutput(candidate(), raw))
    assert codes(result) == ["PROPOSAL_TOO_LARGE"]


def test_situational_reasons_travel_with_the_draft(bundle: PolicyBundle) -> None:
    holder = ActivePlanRef("rd-old", "northwind", "acme", "RENEWAL_DEFENSE")
    request = request_for("acme", now="2024-11-01T00:00:00Z")  # renewal 195 days away
    result = judge(bundle, candidate(), request=request, active_plans=[holder])
    assert result.drafted
    assert result.decision is not None and not result.decision.can_activate
    assert sorted(r.code for r in result.decision.reasons) == [
        "CONFLICT_ACTIVE_PLAN",
        "ELIGIBILITY_NOT_MET",
    ]


def test_a_proposer_error_is_a_rejection(bundle: PolicyBundle) -> None:
    result = judge(bundle, ProposerError("model throttled", retryable=True))
    assert codes(result) == ["PROPOSER_FAILED"]
    assert result.reasons[0].details == {"retryable": True}
    assert result.audit.output_digest is None


def test_the_dry_run_gets_the_draft(bundle: PolicyBundle) -> None:
    seen = []

    def dry_run(b: PolicyBundle, plan: Any, facts: Any) -> dict[str, Any]:
        seen.append((plan.status, facts.now))
        return {"ok": True}

    result = judge(bundle, candidate(), dry_run=dry_run)
    assert seen == [("DRAFT", result.audit.time)]
    assert result.simulation == {"ok": True} and result.plan.status == "DRAFT"
    assert not judge(bundle, candidate(status="ACTIVE"), dry_run=dry_run).simulation


def test_audit_digests_follow_inputs_and_output(bundle: PolicyBundle) -> None:
    a = judge(bundle, candidate()).audit
    b = judge(bundle, candidate(objective="other")).audit
    c = judge(bundle, candidate(), request=request_for("acme", owner="bob")).audit
    assert a.input_digest == b.input_digest != c.input_digest
    assert a.output_digest != b.output_digest


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tenant_id": "no tenant"}, "`tenant_id` must be an identifier"),
        ({"owner": None}, "`owner`"),
        ({"now": "yesterday"}, "`now` is not an ISO-8601 time"),
        ({"account": {"name": "x"}}, "`account.account_id`"),
        ({"history": list(range(101))}, "more than 100 items"),
        ({"signals": {"note": "x" * 4001}}, "longer than 4000"),
        ({"extra": 1}, "unknown field `extra`"),
    ],
)
def test_account_input_is_validated_and_bounded(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProposalInputError) as info:
        request_for("acme", **changes)
    assert message in str(info.value)


def test_account_input_total_size_is_bounded() -> None:
    history = [{"note": "x" * 3000} for _ in range(30)]
    with pytest.raises(ProposalInputError, match="bytes, more than"):
        request_for("acme", history=history)


def test_the_request_is_plain_json() -> None:
    request = request_for("acme")
    data = request.as_data()
    assert data["now"] == "2025-03-01T09:00:00Z"
    assert data["account"]["renewal_date"] == "2025-05-15T00:00:00Z"
    del data["account_id"]  # derived from `account`
    assert ProposalRequest.from_mapping(data).digest == request.digest
