"""A root converted for earlier facts is reused only while what the rules read is unchanged.

``activation_for`` keeps the CEL conversion of each account and signals
mapping it has seen (per bundle and plan type). New facts holding the same
mapping reuse it only when every object the readers read is the very same
object; a mapping changed in place in any way a rule could see is converted
again. These tests change the mapping in place between two facts and check
that the rules see the change: a cache returning the stale conversion fails
them. (The expressions read only paths the bundled RENEWAL_DEFENSE rules
read: the activation holds just those.)
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.engine.builders import NOW, RENEWAL, bundle, eligible_plan

from planpolicy.cel import CompiledExpr
from planpolicy.facts import Facts, _read, _readers, activation_for

EXPRESSIONS = {
    "status": "account.renewal.status == 'RENEWED'",
    "tickets": "signals.open_p1_tickets > 0",
    "date": "account.renewal_date - now < duration('2160h')",
}


def _expr(source: str) -> CompiledExpr:
    compiled = bundle().cel.compile(source)
    assert compiled.expr is not None, compiled.problems
    return compiled.expr


def _value(source: str, account: Mapping[str, Any], signals: Mapping[str, Any]) -> Any:
    """``source`` evaluated for the bundled plan type over fresh facts holding these mappings."""
    facts = Facts(NOW, account, signals)
    return _expr(source).evaluate(activation_for(bundle(), eligible_plan(), facts)).value


def _account() -> dict[str, Any]:
    return {
        "account_id": "acme",
        "renewal_date": RENEWAL,
        "renewal": {"status": "AT_RISK", "amount": 500.0},
    }


def test_the_same_unchanged_mapping_is_converted_once() -> None:
    account, signals = _account(), {"open_p1_tickets": 2}
    plan = eligible_plan()
    first = activation_for(bundle(), plan, Facts(NOW, account, signals))
    again = activation_for(bundle(), plan, Facts(NOW + dt.timedelta(hours=1), account, signals))
    assert again._values["account"] is first._values["account"]
    assert again._values["signals"] is first._values["signals"]
    assert again._values["now"] is not first._values["now"]  # the time is converted each time


_CHANGES: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], None]]] = [
    ("status", lambda a, s: a["renewal"].update(status="RENEWED")),
    ("status", lambda a, s: a.update(renewal={"status": "RENEWED"})),
    ("status", lambda a, s: a.pop("renewal")),
    ("status", lambda a, s: a["renewal"].update(status=7)),
    ("tickets", lambda a, s: s.update(open_p1_tickets=0)),
    ("tickets", lambda a, s: s.update(open_p1_tickets="2")),
    ("date", lambda a, s: a.update(renewal_date=NOW + dt.timedelta(days=200))),
    ("date", lambda a, s: a.update(renewal_date="2025-12-01T00:00:00Z")),
]


@pytest.mark.parametrize(("rule", "change"), _CHANGES)
def test_a_mapping_changed_in_place_is_converted_again(
    rule: str, change: Callable[[dict[str, Any], dict[str, Any]], None]
) -> None:
    account, signals = _account(), {"open_p1_tickets": 2}
    source = EXPRESSIONS[rule]
    before = _value(source, account, signals)
    change(account, signals)  # the same dict objects, changed in place
    expected = _value(source, copy.deepcopy(account), copy.deepcopy(signals))  # new objects
    assert expected != before  # the change is one the rule sees
    assert _value(source, account, signals) == expected


def test_a_value_that_could_change_in_place_is_never_reused() -> None:
    """A value read whole that is mutable (a list here) is converted every time."""
    account, signals = _account(), {"open_p1_tickets": [1]}
    plan = eligible_plan()
    first = activation_for(bundle(), plan, Facts(NOW, account, signals))
    again = activation_for(bundle(), plan, Facts(NOW, account, signals))
    assert again._values["signals"] is not first._values["signals"]


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from(["AT_RISK", "RENEWED", "2025-05-15T00:00:00Z", "not a time"]),
    st.just(RENEWAL),
    st.dictionaries(st.sampled_from(["status", "amount"]), st.integers(0, 3), max_size=2),
)
ACCOUNTS = st.fixed_dictionaries(
    {},
    optional={
        "renewal_date": VALUES,
        "renewal": st.fixed_dictionaries({}, optional={"status": VALUES, "amount": VALUES})
        | VALUES,
    },
)


@settings(max_examples=200, deadline=None)
@given(accounts=st.lists(ACCOUNTS, min_size=2, max_size=4), keep=st.booleans())
def test_reused_or_not_each_conversion_equals_a_fresh_one(
    accounts: list[dict[str, Any]], keep: bool
) -> None:
    """One mapping object takes each generated content in turn (or a new object each time)."""
    b = bundle()
    plan = eligible_plan()
    ptype = b.plan_type(plan.plan_type)
    assert ptype is not None
    readers = _readers(b, ptype.name, ptype.paths)
    defs = b.context_schema.get("$defs", {})
    held: dict[str, Any] = {}
    signals = {"open_p1_tickets": 1}
    for content in accounts:
        if keep:
            held.clear()
            held.update(content)
            account = held
        else:
            account = content
        try:
            fresh = _read(readers, {"account": account}, defs)["account"]
        except (TypeError, ValueError):
            with pytest.raises((TypeError, ValueError)):
                activation_for(b, plan, Facts(NOW, account, signals))
            continue
        got = activation_for(b, plan, Facts(NOW, account, signals))._values["account"]
        assert got == fresh
        assert repr(got) == repr(fresh)
