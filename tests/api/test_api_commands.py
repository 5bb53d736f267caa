"""The commands: each authority-checked for role and risk, lifecycle-checked, and ledgered.

Roles (policies/authority.yaml): a manager approves up to MEDIUM risk, a
director any risk; managers and directors approve steps, resume and abort;
account executives, managers and directors pause; the owner may pause and
resume; the proposer may not approve their own plan.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.harness import AE, DIRECTOR, MANAGER, MEDIUM_STEPS, ApiClient, assert_problem


def _events(api: ApiClient, plan_id: str) -> list[tuple[str, str]]:
    entries = api.get(f"/v1/plans/{plan_id}/ledger").json()["entries"]
    return [(e["event"], e["actor"]) for e in entries]


# --- approve -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "roles", "codes"),
    [
        ("ae1", AE, {"AUTHORITY_SELF_APPROVAL", "AUTHORITY_ROLE_NOT_ALLOWED"}),
        ("mgr", MANAGER, {"AUTHORITY_ROLE_NOT_ALLOWED"}),
        ("nobody", (), {"AUTHORITY_ROLE_NOT_ALLOWED"}),
    ],
    ids=["proposer", "manager-high-risk", "no-role"],
)
def test_approve_is_refused_without_authority(
    api: ApiClient, user: str, roles: tuple[str, ...], codes: set[str]
) -> None:
    plan = api.create()
    response = api.post(f"/v1/plans/{plan['plan_id']}/approve", {}, user, roles)
    problem = assert_problem(response, 403, "authority-denied")
    assert {r["code"] for r in problem["reasons"]} == codes
    assert problem["trigger"] == "approve"
    assert api.get(f"/v1/plans/{plan['plan_id']}").json()["status"] == "DRAFT"
    assert _events(api, plan["plan_id"]) == [("created", "ae1")]


def test_a_director_approves_a_high_risk_plan(api: ApiClient) -> None:
    plan = api.create()
    response = api.post(
        f"/v1/plans/{plan['plan_id']}/approve", {"reason": "risk accepted"}, "dir", DIRECTOR
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["approved_by"], body["version"]) == ("APPROVED", "dir", 2)
    assert response.headers["etag"] == '"2"'
    entries = api.get(f"/v1/plans/{plan['plan_id']}/ledger").json()["entries"]
    assert (entries[-1]["event"], entries[-1]["actor"], entries[-1]["reason"]) == (
        "approved",
        "dir",
        "risk accepted",
    )
    assert entries[-1]["evidence"]["plan_risk"] == "HIGH"


def test_a_manager_approves_a_medium_risk_plan(api: ApiClient) -> None:
    plan = api.create(steps=MEDIUM_STEPS)
    response = api.post(f"/v1/plans/{plan['plan_id']}/approve", {}, "mgr", MANAGER)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "APPROVED"


def test_approving_twice_is_an_invalid_transition(api: ApiClient) -> None:
    plan = api.approved()
    response = api.post(f"/v1/plans/{plan['plan_id']}/approve", {}, "dir2", DIRECTOR)
    problem = assert_problem(response, 409, "invalid-transition")
    assert (problem["state"], problem["trigger"]) == ("APPROVED", "approve")
    assert "activate" in problem["allowed_triggers"]


# --- activate --------------------------------------------------------------------------


def test_activate_runs_the_gate_and_records_it(api: ApiClient) -> None:
    plan = api.approved()
    response = api.post(f"/v1/plans/{plan['plan_id']}/activate", {}, "dir", DIRECTOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ACTIVE" and body["activated_at"]
    assert body["latest_gate"]["can_activate"] is True
    assert _events(api, plan["plan_id"])[-2:] == [("gate_decision", "dir"), ("activated", "dir")]


def test_activate_needs_the_authority_to_approve(api: ApiClient) -> None:
    plan = api.approved()
    response = api.post(f"/v1/plans/{plan['plan_id']}/activate", {}, "ae1", AE)
    problem = assert_problem(response, 403, "authority-denied")
    assert problem["trigger"] == "activate"
    assert api.get(f"/v1/plans/{plan['plan_id']}").json()["status"] == "APPROVED"


def test_activating_a_draft_is_an_invalid_transition(api: ApiClient) -> None:
    plan = api.create()
    response = api.post(f"/v1/plans/{plan['plan_id']}/activate", {}, "dir", DIRECTOR)
    problem = assert_problem(response, 409, "invalid-transition")
    assert (problem["state"], problem["trigger"]) == ("DRAFT", "activate")


def test_a_gate_denial_is_a_409_with_reasons_and_is_ledgered(api: ApiClient) -> None:
    plan = api.approved("renewed")  # the renewal was already won: not eligible
    response = api.post(f"/v1/plans/{plan['plan_id']}/activate", {}, "dir", DIRECTOR)
    problem = assert_problem(response, 409, "gate-denied")
    assert "ELIGIBILITY_NOT_MET" in {r["code"] for r in problem["reasons"]}
    assert problem["current_version"] == plan["version"] + 1
    after = api.get(f"/v1/plans/{plan['plan_id']}").json()
    assert after["status"] == "APPROVED"
    assert after["latest_gate"]["can_activate"] is False
    ledger = api.get(f"/v1/plans/{plan['plan_id']}/ledger").json()
    assert [e["event"] for e in ledger["entries"]][-2:] == ["gate_decision", "activation_rejected"]
    assert ledger["why_stopped"]["event"] == "activation_rejected"


def test_a_second_active_plan_for_the_account_is_rejected(api: ApiClient) -> None:
    first = api.active("initech")
    second = api.approved("initech")
    response = api.post(f"/v1/plans/{second['plan_id']}/activate", {}, "dir", DIRECTOR)
    problem = assert_problem(response, 409, "gate-denied")
    assert "CONFLICT_ACTIVE_PLAN" in {r["code"] for r in problem["reasons"]}
    assert first["plan_id"] in problem["detail"]


def test_check_is_a_dry_run(api: ApiClient) -> None:
    eligible = api.approved("acme")
    denied = api.approved("renewed")
    decision = api.get(f"/v1/plans/{eligible['plan_id']}/check").json()
    assert decision["can_activate"] is True and decision["plan_risk"] == "HIGH"
    assert decision["ledger_seq"] is None
    refused = api.get(f"/v1/plans/{denied['plan_id']}/check").json()
    assert refused["can_activate"] is False
    reason = next(r for r in refused["reasons"] if r["code"] == "ELIGIBILITY_NOT_MET")
    assert reason["rule"]["document"] == "RENEWAL_DEFENSE"
    assert api.get(f"/v1/plans/{denied['plan_id']}").json()["version"] == denied["version"]


# --- pause, resume, abort ----------------------------------------------------------------


def test_pause_and_resume_are_ledgered_with_the_caller_and_reason(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    paused = api.post(f"/v1/plans/{pid}/pause", {"reason": "customer asked to wait"}, "ae1", AE)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "PAUSED"
    ledger = api.get(f"/v1/plans/{pid}/ledger").json()
    assert ledger["why_stopped"]["event"] == "paused"
    assert (ledger["why_stopped"]["actor"], ledger["why_stopped"]["reason"]) == (
        "ae1",
        "customer asked to wait",
    )
    resumed = api.post(f"/v1/plans/{pid}/resume", {"reason": "customer is back"}, "mgr", MANAGER)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "ACTIVE"
    entries = api.get(f"/v1/plans/{pid}/ledger").json()
    assert entries["why_stopped"] is None
    last = entries["entries"][-1]
    assert (last["event"], last["actor"], last["reason"]) == (
        "resumed",
        "mgr",
        "customer is back",
    )
    assert last["evidence"]["gate"]["can_activate"] is True


@pytest.mark.parametrize("trigger", ["pause", "resume", "abort"])
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": 5}])
def test_pause_resume_and_abort_require_a_reason(
    api: ApiClient, trigger: str, body: dict[str, Any]
) -> None:
    response = api.post(f"/v1/plans/some-plan/{trigger}", body, "dir", DIRECTOR)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "reason"


@pytest.mark.parametrize(
    ("trigger", "user", "roles", "state"),
    [
        ("pause", "nobody", (), "ACTIVE"),
        ("abort", "other-ae", AE, "ACTIVE"),
        ("abort", "ae1", AE, "ACTIVE"),  # the owner may pause and resume, not abort
        ("resume", "other-ae", AE, "PAUSED"),
    ],
    ids=["pause-no-role", "abort-ae", "abort-owner", "resume-ae"],
)
def test_transitions_are_refused_without_authority(
    api: ApiClient, trigger: str, user: str, roles: tuple[str, ...], state: str
) -> None:
    plan = api.active()
    if state == "PAUSED":
        api.post(f"/v1/plans/{plan['plan_id']}/pause", {"reason": "hold"}, "ae1", AE)
    response = api.post(f"/v1/plans/{plan['plan_id']}/{trigger}", {"reason": "x"}, user, roles)
    problem = assert_problem(response, 403, "authority-denied")
    assert problem["reasons"][0]["code"] == "AUTHORITY_ROLE_NOT_ALLOWED"
    assert api.get(f"/v1/plans/{plan['plan_id']}").json()["status"] == state


def test_the_owner_may_resume_their_plan(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    api.post(f"/v1/plans/{pid}/pause", {"reason": "hold"}, "mgr", MANAGER)
    response = api.post(f"/v1/plans/{pid}/resume", {"reason": "go"}, "ae1", AE)
    assert response.status_code == 200, response.text


def test_abort_ends_the_plan_for_good(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    response = api.post(f"/v1/plans/{pid}/abort", {"reason": "deal lost"}, "dir", DIRECTOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["completion_reason"], body["allowed_triggers"]) == (
        "ABORTED",
        "aborted",
        [],
    )
    ledger = api.get(f"/v1/plans/{pid}/ledger").json()
    assert (ledger["why_stopped"]["event"], ledger["why_stopped"]["reason"]) == (
        "aborted",
        "deal lost",
    )
    for trigger in ("pause", "resume", "abort"):
        problem = assert_problem(
            api.post(f"/v1/plans/{pid}/{trigger}", {"reason": "x"}, "dir", DIRECTOR),
            409,
            "invalid-transition",
        )
        assert (problem["state"], problem["trigger"]) == ("ABORTED", trigger)
    # the activation guard was released: a new plan for the account can become ACTIVE
    assert api.active("acme")["status"] == "ACTIVE"


def test_a_draft_can_be_aborted(api: ApiClient) -> None:
    plan = api.create()
    response = api.post(f"/v1/plans/{plan['plan_id']}/abort", {"reason": "dup"}, "mgr", MANAGER)
    assert response.json()["status"] == "ABORTED"


def test_pausing_a_paused_plan_is_an_invalid_transition(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    assert api.post(f"/v1/plans/{pid}/pause", {"reason": "a"}, "ae1", AE).status_code == 200
    problem = assert_problem(
        api.post(f"/v1/plans/{pid}/pause", {"reason": "b"}, "ae1", AE), 409, "invalid-transition"
    )
    assert (problem["state"], problem["trigger"]) == ("PAUSED", "pause")
    assert problem["allowed_triggers"] == ["resume", "abort", "expire"]


# --- human-touch steps ---------------------------------------------------------------------


def test_a_manager_approves_a_human_touch_step(api: ApiClient) -> None:
    plan = api.active()
    step = next(s for s in plan["steps"] if s["human_touch"])
    path = f"/v1/plans/{plan['plan_id']}/steps/{step['step_id']}/approve"
    problem = assert_problem(api.post(path, {}, "ae1", AE), 403, "authority-denied")
    assert problem["trigger"] == "approve_step"
    response = api.post(path, {"reason": "escalation is right"}, "mgr", MANAGER)
    assert response.status_code == 200, response.text
    approved = next(s for s in response.json()["steps"] if s["step_id"] == step["step_id"])
    assert approved["human_approved_by"] == "mgr"
    last = api.get(f"/v1/plans/{plan['plan_id']}/ledger").json()["entries"][-1]
    assert (last["event"], last["actor"], last["step_id"]) == (
        "step_approved",
        "mgr",
        step["step_id"],
    )


def test_approving_an_unknown_step_is_a_404(api: ApiClient) -> None:
    plan = api.active()
    path = f"/v1/plans/{plan['plan_id']}/steps/00000000-0000-4000-8000-000000000000/approve"
    problem = assert_problem(api.post(path, {}, "mgr", MANAGER), 404, "not-found")
    assert problem["detail"].startswith("step ")


def test_approving_a_step_of_an_ended_plan_is_an_invalid_transition(api: ApiClient) -> None:
    plan = api.create()
    api.post(f"/v1/plans/{plan['plan_id']}/abort", {"reason": "x"}, "dir", DIRECTOR)
    step = plan["steps"][2]["step_id"]
    response = api.post(f"/v1/plans/{plan['plan_id']}/steps/{step}/approve", {}, "mgr", MANAGER)
    assert_problem(response, 409, "invalid-transition")


def test_a_step_id_must_be_a_uuid(api: ApiClient) -> None:
    response = api.post("/v1/plans/p/steps/not-a-uuid/approve", {}, "mgr", MANAGER)
    problem = assert_problem(response, 422, "validation-error")
    assert (problem["errors"][0]["location"], problem["errors"][0]["field"]) == ("path", "step_id")
