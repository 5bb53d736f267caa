"""Compiled CEL closures against cel-python's interpreter, expression by expression.

The closures (planpolicy.celprogram) must give exactly what cel-python's tree
interpreter gives: the same value, or the same (sanitized) error message. The
differential tests generate expressions over a context holding every kind of
value, missing keys and nulls, and evaluate each both ways.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from planpolicy.cel import (
    CelEnvironment,
    CompiledExpr,
    EvalResult,
    ObjectType,
    clear_compile_cache,
    make_activation,
)
from planpolicy.celprogram import Unsupported, compile_program

UTC = dt.UTC
CONTEXT: dict[str, Any] = {
    "account": {
        "tier": "ENTERPRISE",
        "name": "Acme Corp",
        "arr": 480000.0,
        "seats": 120,
        "active": True,
        "tags": ["strategic", "emea", "renewal"],
        "scores": [41, 7, -3],
        "ratios": [0.5, 1.5],
        "owner": None,
        "renewal": {
            "status": "AT_RISK",
            "date": dt.datetime(2025, 5, 15, tzinfo=UTC),
            "amount": 480000.0,
            "notes": {},
        },
        "contacts": [{"role": "champion", "days": 23}, {"role": "buyer", "days": 90}],
        "window": dt.timedelta(days=30),
        "blob": b"\x00\x01",
    },
    "signals": {"open_p1_tickets": 2, "usage_trend": -0.18, "champion_left": False},
    "now": dt.datetime(2025, 3, 1, 9, tzinfo=UTC),
}

INTS = ["account.seats", "signals.open_p1_tickets", "size(account.tags)", "account.scores[0]"]
DOUBLES = ["account.arr", "signals.usage_trend", "account.renewal.amount", "account.ratios[1]"]
STRINGS = ["account.tier", "account.name", "account.renewal.status", "account.tags[2]"]
BOOLS = ["account.active", "signals.champion_left"]
LISTS = ["account.tags", "account.scores", "account.ratios", "account.contacts", "[1, 2, 3]", "[]"]
MAPS = ["account.renewal", "account.renewal.notes", "signals", "{'a': 1, 'b': 2}"]
TIMES = ["now", "account.renewal.date", "timestamp('2025-01-01T00:00:00Z')"]
DURATIONS = ["account.window", "duration('720h')", "duration('90m')"]
ODD = [
    "account.owner",
    "account.missing",
    "account.renewal.missing.deeper",
    "account.tags[7]",
    "account.blob",
    "null",
    "1 / 0",
    "account.scores[-1]",
    "account.tier.size()",
    "nope",
]
LITERALS = [
    "0",
    "1",
    "-5",
    "2.5",
    "0.0",
    "'AT_RISK'",
    "'x'",
    "true",
    "false",
    "9223372036854775807",
]

ATOMS = INTS + DOUBLES + STRINGS + BOOLS + LISTS + MAPS + TIMES + DURATIONS + ODD + LITERALS


def _expressions() -> st.SearchStrategy[str]:
    atom = st.sampled_from(ATOMS)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner,
            st.sampled_from(
                ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||", "in"]
            ),
            inner,
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        unary = st.tuples(st.sampled_from(["!", "-"]), inner).map(lambda t: f"{t[0]}({t[1]})")
        ternary = st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")
        macro = st.tuples(
            st.sampled_from(LISTS + MAPS),
            st.sampled_from(["all", "exists", "exists_one", "filter", "map"]),
            st.sampled_from(
                [
                    "x == 1",
                    "x > 0",
                    "x",
                    "x.role == 'champion'",
                    "size(x) > 1",
                    "x != null",
                    "1 / 0 == x",
                ]
            ),
        ).map(lambda t: f"{t[0]}.{t[1]}(x, {t[2]})")
        call = st.tuples(
            st.sampled_from(
                ["size", "int", "double", "string", "has", "dyn", "type", "timestamp", "duration"]
            ),
            inner,
        ).map(lambda t: f"{t[0]}({t[1]})")
        method = st.tuples(
            inner,
            st.sampled_from(
                [
                    "startsWith('A')",
                    "endsWith('RISK')",
                    "contains('T')",
                    "size()",
                    "getFullYear()",
                    "getHours()",
                    "getDayOfWeek()",
                ]
            ),
        ).map(lambda t: f"({t[0]}).{t[1]}")
        index = st.tuples(inner, st.sampled_from(["0", "1", "'status'", "'a'", "-1"])).map(
            lambda t: f"({t[0]})[{t[1]}]"
        )
        containers = st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]") | st.tuples(
            inner, inner
        ).map(lambda t: f"{{'k': {t[0]}, 'j': {t[1]}}}")
        return binary | unary | ternary | macro | call | method | index | containers

    return st.recursive(atom, extend, max_leaves=6)


ENV = CelEnvironment(ObjectType({}, open=True))
ACTIVATION = make_activation(CONTEXT)


@pytest.fixture(autouse=True, scope="module")
def _cel_python_ready() -> None:
    # The first evaluation builds cel-python's Environment, which raises the recursion
    # limit: do it before hypothesis runs (it refuses a limit changed under it).
    warm = ENV.compile("1 == 1").expr
    assert warm is not None and warm.interpreted().evaluate(ACTIVATION).value is True


def _interpreted(expr: CompiledExpr) -> CompiledExpr:
    reference = expr.interpreted()
    assert not reference.compiled
    return reference


def _same(a: EvalResult, b: EvalResult) -> bool:
    if a.error != b.error:
        return False
    return _same_value(a.value, b.value)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _both(source: str, *, generated: bool = False) -> tuple[EvalResult, EvalResult]:
    result = ENV.compile(source, expect_bool=False)
    if generated:
        assume(result.ok)  # the checker refuses some generated text (e.g. `1 == 'x'`)
    assert result.expr is not None, result.problems
    assert result.expr.compiled, f"not compiled: {source}"
    return result.expr.evaluate(ACTIVATION), _interpreted(result.expr).evaluate(ACTIVATION)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_expressions())
def test_closures_match_the_interpreter(source: str) -> None:
    compiled, interpreted = _both(source, generated=True)
    assert _same(compiled, interpreted), (source, compiled, interpreted)


@pytest.mark.parametrize(
    "source",
    [
        "1/0 == 1 || true",
        "(1/0 == 1) && false",
        "true || 1/0 == 1",
        "[1].map(x, 1/0) == [] || true",
        "account.tags.all(t, t > 1)",
        "account.tags.exists(t, t == 'emea')",
        "account.scores.exists_one(s, s > 40)",
        "account.contacts.filter(c, c.days > 30).map(c, c.role)",
        "{'a': 1, 'a': 2}",
        "{'a': 1/0}.a",
        "account.missing == 1",
        "has(account.renewal.status) && !has(account.renewal.nope)",
        "account.renewal.date - now < duration('2160h')",
        "account.seats == 120.0",
        "9223372036854775807 + 1",
        "'emea' in account.tags",
        "1 in [1, 'a']",
        "2 in [1, 'a']",
        "type(account.seats) == int",
        "nope",
        "size",
        "int('x')",
        "account.tier.matches('^ENT')",
        "true ? account.tier : 1/0",
        "(1/0 > 1) ? 1 : 2",
    ],
)
def test_known_cases_match_the_interpreter(source: str) -> None:
    compiled, interpreted = _both(source)
    assert _same(compiled, interpreted), (compiled, interpreted)


def test_constants_are_folded_once_but_errors_stay_fresh() -> None:
    clear_compile_cache()
    folded = ENV.compile("duration('720h') > duration('1h')").expr
    assert folded is not None and folded.evaluate(make_activation({})).value is True
    failing = ENV.compile("1 / 0 == 1").expr
    assert failing is not None
    first = failing.evaluate(make_activation({}))
    second = failing.evaluate(make_activation({}))
    assert first.error == second.error == "division by zero in `1 / 0`"


def test_a_pattern_is_never_run_when_the_bundle_loads() -> None:
    # A catastrophic pattern on constants would hang a load that folded it.
    expr = ENV.compile("'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('^(a+)+$')")
    assert expr.ok  # compiled without evaluating the pattern


def test_unsupported_constructs_keep_the_interpreter() -> None:
    from celpy import Environment

    tree = Environment().compile(".account")  # leading-dot names resolve in the root scope only
    with pytest.raises(Unsupported):
        compile_program(tree)
    uint = ENV.compile("1u + 2u == 3u", expect_bool=True)
    assert uint.expr is not None and uint.expr.evaluate(make_activation({})).value is True
