"""The activation holds only the context paths the rules read, and that changes nothing.

``activation_for`` converts just the paths the type checker recorded for a plan
type's expressions. Each expression below, over generated contexts (missing
keys, nulls, values of the wrong type), must evaluate exactly as it does over
the whole converted context.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.engine.builders import acme_facts, bundle, eligible_plan

from planpolicy.cel import activation_of, make_activation
from planpolicy.facts import Facts, _coerce, _read, _readers, activation_for
from planpolicy.gate import Gate

EXPRESSIONS = [
    "account.renewal.status == 'AT_RISK'",
    "has(account.renewal.amount) && account.renewal.amount > 1000.0",
    "account.renewal_date - now < duration('2160h')",
    "plan.steps.exists(k, plan.steps[k].status == 'SUCCEEDED')",
    "plan.steps['PREP_RENEWAL_BRIEF'].attempts < 3",
    "has(plan.steps.PREP_RENEWAL_BRIEF)",
    "signals.open_p1_tickets > 0 || signals.champion_left",
    "account.tier in ['ENTERPRISE', 'MID_MARKET']",
    "size(account.renewal) > 1",
    "account.renewal == {'status': 'AT_RISK'}",
    "(signals.open_p1_tickets > 0 ? account.renewal : account).size() > 0",
    "account.name.startsWith('A') && account.health_score < 50",
]

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from(["AT_RISK", "ENTERPRISE", "Acme", "2025-05-15T00:00:00Z", "not a time"]),
    st.just(dt.datetime(2025, 5, 15, tzinfo=dt.UTC)),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["status", "amount", "x"]), st.integers(0, 3), max_size=2),
)


def _maybe(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: v | ANY_VALUE for k, v in keys.items()})


ACCOUNTS = _maybe(
    {
        "account_id": st.just("acme"),
        "name": st.just("Acme Corp"),
        "tier": st.sampled_from(["ENTERPRISE", "SMB"]),
        "health_score": st.integers(0, 100),
        "renewal_date": st.just("2025-05-15T00:00:00Z"),
        "renewal": _maybe({"status": st.just("AT_RISK"), "amount": st.floats(0, 1e6)}),
        "unread": st.just({"deep": [1, 2, 3]}),
    }
)
SIGNALS = _maybe({"open_p1_tickets": st.integers(0, 3), "champion_left": st.booleans()})


def _whole(data: dict[str, Any]) -> Any:
    b = bundle()
    schema = b.context_schema
    props, defs = schema.get("properties", {}), schema.get("$defs", {})
    coerced = {
        key: value if key in ("plan", "now") else _coerce(value, props.get(key, {}), defs)
        for key, value in data.items()
    }
    return make_activation(coerced, types=b.cel.context)


@pytest.fixture(autouse=True, scope="module")
def _bundle_loaded() -> None:
    # Loading the bundle and the first evaluation (cel-python's Environment) may raise
    # the recursion limit: do both before hypothesis runs.
    compiled = bundle().cel.compile("1 == 1").expr
    assert compiled is not None and compiled.evaluate(make_activation({})).value is True


@settings(max_examples=150, deadline=None)
@given(account=ACCOUNTS, signals=SIGNALS, which=st.sampled_from(range(len(EXPRESSIONS))))
def test_projected_activation_evaluates_like_the_whole_context(
    account: dict[str, Any], signals: dict[str, Any], which: int
) -> None:
    b = bundle()
    compiled = b.cel.compile(EXPRESSIONS[which])
    assert compiled.expr is not None, compiled.problems
    expr = compiled.expr
    plan = eligible_plan()
    data = {
        "account": account,
        "signals": signals,
        "plan": {
            "plan_id": plan.plan_id,
            "steps": {"PREP_RENEWAL_BRIEF": {"status": "PENDING", "attempts": 1}},
        },
        "now": dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
    }
    data = {k: v for k, v in data.items() if k in expr.roots}
    try:
        whole = _whole(data)
    except (TypeError, ValueError):
        return  # the whole context cannot be converted; nothing to compare with
    readers = _readers(b, f"test-{which}", expr.paths)
    projected = activation_of(_read(readers, data, b.context_schema.get("$defs", {})))
    assert expr.evaluate(projected) == expr.evaluate(whole)


def _acme_with(**account: Any) -> Facts:
    base = acme_facts()
    return acme_facts(account={**base.account, **account})


def test_unread_values_do_not_reach_the_rules() -> None:
    """A value no rule reads is not converted, so it cannot make the context invalid."""
    facts = _acme_with(unread=object())  # not a CEL value, and no rule reads it
    plan = eligible_plan()
    decision = Gate(bundle()).evaluate(plan, facts)
    assert decision.can_activate, decision.reasons
    assert "account" in activation_for(bundle(), plan, facts).names


def test_a_read_value_that_cannot_be_converted_is_still_refused() -> None:
    facts = _acme_with(renewal={"status": object()})
    with pytest.raises(TypeError, match=r"account\.renewal\.status"):
        activation_for(bundle(), eligible_plan(), facts)
    decision = Gate(bundle()).evaluate(eligible_plan(), facts)
    assert "CONTEXT_INVALID" in decision.codes
