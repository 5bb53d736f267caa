"""Property: for any proposer output, what is stored is a DRAFT or nothing (and one record)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.proposals.conftest import request_for
from tests.proposals.support import Scripted, Services

from orchestrator.ledger import LedgerEvent
from planpolicy import PlanStatus, PolicyBundle
from planpolicy.proposal import ProposerError, ProposerOutput

ALLOWED = ["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

steps = st.fixed_dictionaries(
    {"action_type": st.sampled_from([*ALLOWED, *ALLOWED, "WIRE_REFUND", "", 7])},
    optional={
        "parameters": st.dictionaries(
            st.sampled_from(["audience", "contact_email", "discount"]),
            st.text(max_size=30) | st.integers() | st.booleans(),
            max_size=2,
        ),
        "human_touch": st.booleans() | json_values,
        "status": st.sampled_from(["PENDING", "SUCCEEDED", "DISPATCHED"]),
        "step_id": st.uuids().map(str),
        "attempts": st.integers(0, 3),
        "human_approved_by": st.just("cro"),
    },
)

candidates = st.fixed_dictionaries(
    {
        "plan_type": st.sampled_from(["RENEWAL_DEFENSE", "RENEWAL_DEFENSE", "UPSELL_PUSH"]),
        "steps": st.lists(steps, max_size=5)
        | st.permutations([{"action_type": a} for a in ALLOWED]).map(list),
    },
    optional={
        "objective": st.text(max_size=40),
        "expires_in_days": st.integers(-5, 200) | json_values,
        "rationale": st.text(max_size=40),
        "status": st.sampled_from([s.value for s in PlanStatus]),
        "approved_by": st.just("cro"),
        "activated_at": st.just("2025-03-01T09:00:00Z"),
        "tenant_id": st.sampled_from(["northwind", "southwind"]),
        "account_id": st.sampled_from(["acme", "globex"]),
        "plan_id": st.text(max_size=10),
        "version": st.integers(1, 5),
        "surprise": json_values,
    },
)


def _near_valid(order: list[str], extra: dict[str, Any], touch: bool) -> dict[str, Any]:
    """The allowed steps in some order, plus at most one extra field."""
    chosen = [{"action_type": a, "human_touch": touch} for a in order]
    return {"plan_type": "RENEWAL_DEFENSE", "expires_in_days": 30, "steps": chosen, **extra}


near_valid = st.builds(
    _near_valid,
    st.sampled_from([ALLOWED, ALLOWED[:2], [ALLOWED[0], ALLOWED[2], ALLOWED[1]]])
    | st.permutations(ALLOWED).map(list),
    st.dictionaries(
        st.sampled_from(["status", "approved_by", "plan_id", "owner", "tenant_id"]),
        st.sampled_from(["DRAFT", "APPROVED", "ACTIVE", "northwind", "cro"]),
        max_size=1,
    ),
    st.booleans(),
)

outputs = st.one_of(
    near_valid.map(lambda c: ProposerOutput(c, c)),
    near_valid.map(lambda c: ProposerOutput(c, c)),
    candidates.map(lambda c: ProposerOutput(c, c)),
    json_values.map(lambda v: ProposerOutput(v, v)),
    st.builds(
        ProposerError, st.text(min_size=1, max_size=30), retryable=st.booleans(), raw=st.none()
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs)
def test_what_is_stored_is_a_draft_or_nothing(bundle: PolicyBundle, output: Any) -> None:
    request = request_for("acme")
    s = Services(bundle, request, horizon_days=1)
    given_ids: set[str] = set()
    if isinstance(output, ProposerOutput) and isinstance(output.candidate, dict):
        for step in output.candidate.get("steps", []):
            if isinstance(step, dict) and "step_id" in step:
                given_ids.add(str(step["step_id"]))
    outcome = s.proposals.propose(request, Scripted(output))
    event("drafted" if outcome.plan is not None else "rejected")
    everything = list(s.store.scan_plans())
    records = s.rejections.records("northwind")
    if outcome.plan is None:
        assert everything == [] and len(records) == 1
        assert records[0].event == LedgerEvent.PROPOSAL_REJECTED
        assert outcome.result.reasons
        return
    assert records == [] and len(everything) == 1
    stored = s.store.get_plan("northwind", outcome.plan.plan_id)
    assert stored.status == PlanStatus.DRAFT
    assert stored.tenant_id == "northwind" and stored.account_id == "acme"
    assert stored.approved_by is None and stored.approved_at is None
    assert stored.activated_at is None and stored.bundle_digest is None
    assert stored.created_by == "proposer:scripted" and stored.owner == "alice"
    assert all(step.status == "PENDING" and step.attempts == 0 for step in stored.steps)
    assert all(step.human_approved_by is None for step in stored.steps)
    assert {str(step.step_id) for step in stored.steps}.isdisjoint(given_ids)
    escalations = [step for step in stored.steps if step.action_type == "ESCALATE_SUPPORT_RISK"]
    assert all(step.human_touch for step in escalations)
    ledger = s.store.ledger("northwind", stored.plan_id)
    assert [e.event for e in ledger] == [LedgerEvent.CREATED, LedgerEvent.PROPOSAL]
