"""Properties of the gate over generated plans and contexts (hypothesis).

- the gate never raises, whatever the plan and the context hold;
- ``can_activate`` is false exactly when some reason is present;
- the plan's risk is the highest risk of its (allowed) steps;
- a plan with a conflicting ACTIVE plan in its scope is always rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.engine.builders import NOW, bundle

from planpolicy.facts import ActivePlanRef, Facts
from planpolicy.gate import Gate
from planpolicy.plan import PlanStep, RevenuePlanV1
from planpolicy.reasons import REASON_CODES

GATE = Gate(bundle())
PTYPE = bundle().plan_types["RENEWAL_DEFENSE"]
RISK = bundle().risk
KNOWN_STEPS = list(PTYPE.step_order)
STATES = ["DRAFT", "APPROVED", "ACTIVE", "PAUSED", "COMPLETED", "ABORTED", "EXPIRED", "LIMBO"]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    moments,
    st.sampled_from(["OPEN", "AT_RISK", "RENEWED", "CHURNED", "2025-05-15T00:00:00Z"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
parameters = st.dictionaries(
    st.sampled_from(["audience", "contact_email", "tone"]),
    st.one_of(st.text(max_size=250), st.integers(), st.booleans(), st.floats(allow_nan=False)),
    max_size=2,
)


@st.composite
def plan_steps(draw: st.DrawFn) -> list[PlanStep]:
    names = draw(
        st.lists(st.sampled_from([*KNOWN_STEPS, "SEND_DISCOUNT_OFFER"]), min_size=1, max_size=5)
    )
    return [
        PlanStep(action_type=name, human_touch=draw(st.booleans()), parameters=draw(parameters))
        for name in names
    ]


@st.composite
def plans(draw: st.DrawFn) -> RevenuePlanV1:
    created = draw(moments)
    activated = draw(st.none() | moments)
    return RevenuePlanV1(
        plan_id=draw(st.sampled_from(["p1", "p2", "p3"])),
        tenant_id=draw(st.sampled_from(["northwind", "southwind"])),
        account_id=draw(st.sampled_from(["acme", "globex"])),
        plan_type=draw(st.sampled_from(["RENEWAL_DEFENSE", "RENEWAL_DEFENSE", "UPSELL_PUSH"])),
        plan_type_version=draw(st.integers(min_value=1, max_value=3)),
        status=draw(st.sampled_from(STATES)),
        steps=draw(plan_steps()),
        owner="alice",
        created_by="paul",
        created_at=created,
        updated_at=created,
        activated_at=activated,
        expires_at=draw(moments),
    )


def account_data(draw: st.DrawFn) -> dict[str, Any]:
    account: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), values, max_size=2))
    if draw(st.booleans()):
        account["account_id"] = draw(st.sampled_from(["acme", "globex"]))
    if draw(st.booleans()):
        account["renewal_date"] = draw(st.one_of(moments, values))
    if draw(st.booleans()):
        account["renewal"] = draw(
            st.one_of(st.fixed_dictionaries({"status": st.one_of(scalars)}), values)
        )
    return account


active_refs = st.builds(
    ActivePlanRef,
    plan_id=st.sampled_from(["p1", "p2", "other"]),
    tenant_id=st.sampled_from(["northwind", "southwind"]),
    account_id=st.sampled_from(["acme", "globex"]),
    plan_type=st.sampled_from(["RENEWAL_DEFENSE", "UPSELL_PUSH"]),
    status=st.sampled_from(["ACTIVE", "PAUSED"]),
)


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    signals: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), values, max_size=2))
    if draw(st.booleans()):
        signals["open_p1_tickets"] = draw(st.one_of(st.integers(-2, 5), values))
    naive = draw(st.booleans())
    now = draw(moments)
    return Facts(
        now.replace(tzinfo=None) if naive else now,
        account_data(draw),
        signals,
        tuple(draw(st.lists(active_refs, max_size=3))),
        draw(
            st.dictionaries(
                st.sampled_from(["tenant", "plan", "now", "crm"]),
                st.dictionaries(st.text(max_size=4), values, max_size=2),
                max_size=2,
            )
        ),
    )


@SETTINGS
@given(plans(), facts())
def test_the_gate_never_raises_and_denies_exactly_when_it_has_reasons(
    plan: RevenuePlanV1, context: Facts
) -> None:
    decision = GATE.evaluate(plan, context)
    assert decision.can_activate is (not decision.reasons)
    assert all(r.code in REASON_CODES for r in decision.reasons)
    assert GATE.evaluate(plan, context, explain=True).reasons == decision.reasons


@SETTINGS
@given(plans())
def test_plan_risk_is_the_highest_risk_of_its_steps(plan: RevenuePlanV1) -> None:
    decision = GATE.evaluate(plan, Facts(NOW))
    if plan.plan_type != "RENEWAL_DEFENSE":
        assert decision.plan_risk is None
        return
    risks = [PTYPE.steps[s.action_type].risk for s in plan.steps if s.action_type in PTYPE.steps]
    expected = max(risks, key=RISK.rank) if risks else None
    assert decision.plan_risk == expected
    assert all(RISK.rank(r) <= RISK.rank(expected) for r in risks)  # type: ignore[arg-type]


@SETTINGS
@given(plans(), facts(), st.sampled_from(["p-holder", "x"]))
def test_a_conflicting_active_plan_always_rejects(
    plan: RevenuePlanV1, context: Facts, holder_id: str
) -> None:
    holder = ActivePlanRef(holder_id, plan.tenant_id, plan.account_id, plan.plan_type, "ACTIVE")
    crowded = Facts(
        context.now,
        context.account,
        context.signals,
        (*context.active_plans, holder),
        context.extra,
    )
    decision = GATE.evaluate(plan, crowded)
    assert not decision.can_activate
    if plan.plan_type in bundle().plan_types:
        holders = {
            r.details["holder"] for r in decision.reasons if r.code == "CONFLICT_ACTIVE_PLAN"
        }
        assert holder_id in holders


def test_an_eligible_plan_with_a_conflict_fails_only_on_the_conflict() -> None:
    from tests.engine.builders import acme_facts, active_ref, eligible_plan

    decision = GATE.evaluate(eligible_plan(), acme_facts(active=[active_ref(), active_ref("b")]))
    assert [r.code for r in decision.reasons] == ["CONFLICT_ACTIVE_PLAN"] * 2
    assert decision.plan_risk == "HIGH"
