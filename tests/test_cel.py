"""Specification of `planpolicy.cel`: compile-once CEL, type-checked against the context.

Positions in problems are 1-based and relative to the expression text.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planpolicy.cel import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    CelEnvironment,
    CelProblem,
    CompiledExpr,
    ListType,
    MapType,
    ObjectType,
    clear_compile_cache,
    make_activation,
    types_from_schema,
)

UTC = dt.UTC

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "account": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "renewal_date": {"type": "string", "format": "date-time"},
                "arr": {"type": "number"},
                "health_score": {"type": "integer"},
                "renewal": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "status": {"type": "string", "enum": ["OPEN", "AT_RISK", "RENEWED"]}
                    },
                },
                "tier": {"type": "string"},
                "notes": {"type": "string"},
            },
        },
        "signals": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "open_p1_tickets": {"type": "integer"},
                "tickets": {"type": "array", "items": {"$ref": "#/$defs/Ticket"}},
                "usage": {"type": "object", "additionalProperties": True},
            },
        },
        "plan": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "activated_at": {"type": ["string", "null"], "format": "date-time"},
                "age_days": {"type": "integer"},
                "steps": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/Step"},
                },
            },
        },
        "now": {"type": "string", "format": "date-time"},
    },
    "$defs": {
        "Ticket": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"priority": {"type": "string"}, "age_hours": {"type": "integer"}},
        },
        "Step": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"status": {"type": "string"}},
        },
    },
}

CONTEXT_TYPES = types_from_schema(SCHEMA)
ENV = CelEnvironment(CONTEXT_TYPES)
SECRET_NOTE = "call Dana at 555-0100 about the discount"


def sample_context() -> dict[str, Any]:
    return {
        "account": {
            "renewal_date": dt.datetime(2025, 3, 1, tzinfo=UTC),
            "arr": 125000.0,
            "health_score": 42,
            "renewal": {"status": "AT_RISK"},
            "tier": "ENTERPRISE",
            "notes": SECRET_NOTE,
        },
        "signals": {
            "open_p1_tickets": 1,
            "tickets": [
                {"priority": "P1", "age_hours": 5},
                {"priority": "P3", "age_hours": 80},
            ],
            "usage": {"seats": 40},
        },
        "plan": {"activated_at": None, "age_days": 12, "steps": {"kickoff": {"status": "done"}}},
        "now": dt.datetime(2025, 1, 1, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def activation() -> Any:
    return make_activation(sample_context(), types=CONTEXT_TYPES)


def compile_ok(source: str, *, expect_bool: bool = True) -> CompiledExpr:
    result = ENV.compile(source, expect_bool=expect_bool)
    assert result.expr is not None, result.problems
    return result.expr


def problems(source: str, *, expect_bool: bool = True) -> list[CelProblem]:
    result = ENV.compile(source, expect_bool=expect_bool)
    assert result.problems, f"expected problems for {source!r}"
    if any(p.is_error for p in result.problems):
        assert result.expr is None
    return list(result.problems)


def only_problem(source: str, **kwargs: Any) -> CelProblem:
    found = problems(source, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --- the context schema becomes types ---------------------------------------------


class TestTypesFromSchema:
    def test_closed_objects_and_scalar_types(self) -> None:
        account = CONTEXT_TYPES.fields["account"]
        assert isinstance(account, ObjectType)
        assert not account.open
        assert account.fields["renewal_date"] == TIMESTAMP
        assert account.fields["arr"] == DOUBLE
        assert account.fields["health_score"] == INT
        assert account.fields["tier"] == STRING
        assert CONTEXT_TYPES.fields["now"] == TIMESTAMP

    def test_string_enum_is_string(self) -> None:
        renewal = CONTEXT_TYPES.fields["account"].fields["renewal"]  # type: ignore[attr-defined]
        assert renewal.fields["status"] == STRING

    def test_refs_arrays_and_maps(self) -> None:
        signals = CONTEXT_TYPES.fields["signals"]
        assert isinstance(signals, ObjectType)
        tickets = signals.fields["tickets"]
        assert tickets == ListType(ObjectType({"priority": STRING, "age_hours": INT}))
        steps = CONTEXT_TYPES.fields["plan"].fields["steps"]  # type: ignore[attr-defined]
        assert steps == MapType(STRING, ObjectType({"status": STRING}))

    def test_open_object(self) -> None:
        usage = CONTEXT_TYPES.fields["signals"].fields["usage"]  # type: ignore[attr-defined]
        assert usage == ObjectType({}, open=True)
        assert usage.field_type("anything") == DYN

    def test_nullable_type_list_is_the_non_null_type(self) -> None:
        assert CONTEXT_TYPES.fields["plan"].fields["activated_at"] == TIMESTAMP  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("schema", "expected"),
        [
            ({"type": "string", "format": "date"}, TIMESTAMP),
            ({"type": "string", "format": "duration"}, DURATION),
            ({"type": "string", "format": "email"}, STRING),
            ({"type": "boolean"}, BOOL),
            ({"type": "null"}, NULL),
            ({"type": "array"}, ListType(DYN)),
            ({"enum": ["a", "b"]}, STRING),
            ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, INT),
            ({"type": ["integer", "string"]}, DYN),
            ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, DYN),
            ({"type": "object", "additionalProperties": {"type": "integer"}}, MapType(STRING, INT)),
            ({"$ref": "#/$defs/missing"}, DYN),
            ({}, DYN),
            ({"not": {"type": "string"}}, DYN),
        ],
    )
    def test_property_schemas(self, schema: dict[str, Any], expected: Any) -> None:
        root = {"type": "object", "properties": {"x": schema}, "$defs": {}}
        assert types_from_schema(root).fields["x"] == expected

    def test_additional_properties_schema_with_properties_stays_open(self) -> None:
        root = {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": {"type": "string"},
        }
        converted = types_from_schema(root)
        assert converted.open
        assert converted.field_type("b") == DYN

    def test_recursive_refs_terminate(self) -> None:
        root = {
            "type": "object",
            "properties": {"node": {"$ref": "#/$defs/Node"}},
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/Node"}, "v": {"type": "integer"}},
                }
            },
        }
        node = types_from_schema(root).fields["node"]
        assert isinstance(node, ObjectType)
        assert node.fields["v"] == INT
        assert node.fields["next"] == DYN

    def test_types_are_immutable_and_hashable(self) -> None:
        again = types_from_schema(SCHEMA)
        assert again == CONTEXT_TYPES
        assert hash(again) == hash(CONTEXT_TYPES)
        with pytest.raises(TypeError):
            CONTEXT_TYPES.fields["x"] = INT  # type: ignore[index]
        assert str(ListType(MapType(STRING, INT))) == "list(map(string, int))"


# --- valid expressions compile and evaluate ----------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('account.renewal_date - now < duration("2880h")', True),
        ('account.renewal_date - now < duration("24h")', False),
        ('signals.tickets.exists(t, t.priority == "P1")', True),
        ("signals.tickets.all(t, t.age_hours < 48)", False),
        ('signals.tickets.exists_one(t, t.priority.startsWith("P"))', False),
        ("has(account.tier)", True),
        ("has(signals.usage.seats) && signals.usage.seats > 10", True),
        ('account.renewal.status in ["AT_RISK", "OPEN"]', True),
        ("account.arr >= 100000.0 && account.health_score < 50", True),
        ('plan.steps["kickoff"].status == "done"', True),
        ('"kickoff" in plan.steps', True),
        ("plan.activated_at == null", True),
        ("type(plan.activated_at) == null_type", True),
        ("size(signals.tickets) == 2 && signals.tickets.size() == 2", True),
        ("now.getFullYear() == 2025 && now.getMonth() == 0", True),
        ('account.tier.matches("^ENT") || false', True),
        ('timestamp("2025-01-01T00:00:00Z") == now', True),
        ("signals.open_p1_tickets > 0 ? account.health_score < 60 : false", True),
        ("double(account.health_score) / 2.0 == 21.0", True),
        ("plan.age_days % 5 == 2 && -plan.age_days < 0", True),
        ("dyn(account.arr) > 1.0", True),
    ],
)
def test_valid_expressions_evaluate(source: str, expected: bool, activation: Any) -> None:
    expr = compile_ok(source)
    result = expr.evaluate(activation)
    assert result.ok, result.error
    assert result.value is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("account.health_score + 1", 43),
        ("account.arr * 2.0", 250000.0),
        ('account.tier + "!"', "ENTERPRISE!"),
        ("account.renewal_date", dt.datetime(2025, 3, 1, tzinfo=UTC)),
        ("account.renewal_date - now", dt.timedelta(days=59)),
        ('now + duration("36h")', dt.datetime(2025, 1, 2, 12, tzinfo=UTC)),
        ("signals.tickets.map(t, t.age_hours)", [5, 80]),
        ('signals.tickets.filter(t, t.priority == "P3")', [{"priority": "P3", "age_hours": 80}]),
        ('{"a": [1u, 2u], "b": []}', {"a": [1, 2], "b": []}),
        ('b"ab"', b"ab"),
        ("null", None),
    ],
)
def test_results_are_plain_python(source: str, expected: Any, activation: Any) -> None:
    result = compile_ok(source, expect_bool=False).evaluate(activation)
    assert result.ok, result.error
    assert result.value == expected
    assert type(result.value) is type(expected)


def test_result_type_is_inferred() -> None:
    assert compile_ok("account.renewal_date - now", expect_bool=False).result_type == DURATION
    assert compile_ok("signals.tickets.map(t, t.age_hours)", expect_bool=False).result_type == (
        ListType(INT)
    )
    assert compile_ok("signals.usage.seats", expect_bool=False).result_type == DYN


# --- unknown names ------------------------------------------------------------------


def test_unknown_variable_has_position_and_suggestion() -> None:
    problem = only_problem('acount.tier == "ENTERPRISE"')
    assert (problem.code, problem.line, problem.column) == ("PP402", 1, 1)
    assert problem.message == "unknown variable `acount`"
    assert problem.hint == "did you mean `account`?"


def test_unknown_variable_without_close_match_lists_declared_ones() -> None:
    problem = only_problem("region == 'EU'")
    assert problem.code == "PP402"
    assert problem.hint == "declared variables: `account`, `now`, `plan`, `signals`"


def test_unknown_field() -> None:
    problem = only_problem("account.renewl_date < now")
    assert (problem.code, problem.line, problem.column) == ("PP403", 1, 9)
    assert problem.message == "unknown field `renewl_date` on `account`"
    assert problem.hint == "did you mean `renewal_date`?"


def test_unknown_field_by_index() -> None:
    problem = only_problem('account["tierz"] == "x"')
    assert (problem.code, problem.column) == ("PP403", 9)
    assert problem.message == "unknown field `tierz` on `account`"


def test_unknown_field_inside_macro_body_on_the_loop_variable() -> None:
    problem = only_problem('signals.tickets.exists(t, t.priorty == "P1")')
    assert (problem.code, problem.line, problem.column) == ("PP403", 1, 29)
    assert problem.message == "unknown field `priorty` on `t`"
    assert problem.hint == "did you mean `priority`?"


def test_loop_variable_is_only_bound_inside_the_macro() -> None:
    problem = only_problem('signals.tickets.exists(t, true) && t.priority == "P1"')
    assert (problem.code, problem.column) == ("PP402", 36)


def test_open_objects_and_maps_accept_any_field() -> None:
    compile_ok("signals.usage.seats_used > 3")
    compile_ok('plan.steps.kickoff.status == "done"')
    problem = only_problem('plan.steps.kickoff.state == "done"')
    assert problem.code == "PP403"


def test_multi_line_expression_reports_the_line_and_column() -> None:
    source = (
        'account.tier == "ENTERPRISE"\n  && signals.open_p1_tickets > 0\n  && plan.agedays > 30'
    )
    problem = only_problem(source)
    assert (problem.code, problem.line, problem.column) == ("PP403", 3, 11)
    assert problem.message == "unknown field `agedays` on `plan`"


# --- functions ----------------------------------------------------------------------


def test_unknown_function() -> None:
    problem = only_problem("lenght(account.notes) > 3")
    assert (problem.code, problem.line, problem.column) == ("PP404", 1, 1)
    assert problem.message == "unknown function `lenght`"


def test_unknown_method_suggests_a_close_one() -> None:
    problem = only_problem('account.tier.startswith("ENT")')
    assert (problem.code, problem.column) == ("PP404", 14)
    assert problem.hint == "did you mean `startsWith`?"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("size(account.notes, 2) > 1", "`size` takes 1 argument, got 2"),
        ("account.notes.size(1) > 1", "`size` takes 0 arguments, got 1"),
        ("now.getHours(1, 2) > 1", "`getHours` takes 0 or 1 arguments, got 2"),
        ("signals.tickets.exists(t) ", "`exists` takes 2 arguments, got 1"),
        ("has(account)", "`has` takes one field selection, e.g. `has(account.tier)`"),
    ],
)
def test_wrong_arity(source: str, message: str) -> None:
    problem = only_problem(source)
    assert (problem.code, problem.message) == ("PP404", message)


def test_methods_and_functions_are_not_interchangeable() -> None:
    assert only_problem('startsWith(account.tier, "E")').message == (
        "`startsWith` is a method: write `x.startsWith(...)`"
    )
    assert only_problem("account.arr.int() > 1").message == (
        "`int` is a function, not a method: write `int(x)`"
    )


def test_macro_needs_a_loop_variable() -> None:
    problem = only_problem("signals.tickets.exists(1, true)")
    assert (problem.code, problem.column) == ("PP404", 24)


# --- types ---------------------------------------------------------------------------


def test_non_boolean_condition() -> None:
    problem = only_problem("account.health_score + 1")
    assert (problem.code, problem.line, problem.column) == ("PP405", 1, 1)
    assert problem.message == "expression must be `bool`, got `int`"
    compile_ok("account.health_score + 1", expect_bool=False)


def test_dyn_result_is_accepted_as_a_condition() -> None:
    compile_ok("signals.usage.flag")


def test_int_compared_with_double_is_an_error() -> None:
    problem = only_problem("account.arr > 100000")
    assert (problem.code, problem.line, problem.column) == ("PP406", 1, 13)
    assert problem.message == "cannot compare `double` with `int`"
    assert problem.hint is not None and "`1.0`" in problem.hint


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ('account.tier + 1 == "x"', "operator `+` cannot be applied to `string` and `int`", 14),
        ("now < 5", "cannot compare `timestamp` with `int`", 5),
        ('account.renewal_date == "2025-03-01"', "cannot compare `timestamp` with `string`", 22),
        ("account.health_score == null", "cannot compare `int` with `null`", 22),
        ("now - 1 < now", "operator `-` cannot be applied to `timestamp` and `int`", 5),
        ("account.health_score in [1.0, 2.0]", "cannot compare `int` with `double`", 22),
        (
            "signals.tickets.all(t, t.age_hours)",
            "the condition of `all` must be `bool`, got `int`",
            24,
        ),
        ("account.tier && true", "`&&` needs `bool` operands, got `string`", 1),
        ("!account.tier", "operator `!` needs `bool`, got `string`", 1),
        (
            "account.tier.startsWith(1)",
            "`startsWith` does not accept an argument of type `int`",
            25,
        ),
        ("account.health_score.size() > 0", "`size` is not defined on `int`", 22),
        (
            "timestamp(plan.age_days) < now",
            "`timestamp` does not accept an argument of type `int`",
            11,
        ),
        ("account.tier.x == 1", "cannot select field `x` from `account.tier` of type `string`", 14),
        ("account.health_score.exists(x, true)", "`exists` needs a list or a map, got `int`", 22),
    ],
)
def test_type_mismatches(source: str, message: str, column: int) -> None:
    problem = only_problem(source)
    assert (problem.code, problem.message, problem.column) == ("PP406", message, column)


def test_list_not_equal_null_is_reported_because_cel_python_raises() -> None:
    compile_ok("signals.tickets == null || plan.steps == null")
    problem = only_problem("signals.tickets != null")
    assert problem.message == "cannot compare `list(object)` with `null`"
    assert problem.hint is not None and "`!(x == null)`" in problem.hint


def test_problems_at_boolean_literals_have_positions() -> None:
    # cel-python drops the positions of `true`/`false`; they are recovered from the text
    problem = only_problem('size(\n  "a") == 1 && size(true) == 1')
    assert (problem.line, problem.column) == (2, 21)


@pytest.mark.parametrize(
    "source",
    [
        "signals.usage.seats > 1.5",
        "signals.usage.seats + 1 > signals.usage.limit",
        "dyn(account.health_score) == account.arr",
        "signals.usage.list.exists(x, x > 1)",
        "[signals.usage.a, 1].exists(x, x == 2)",
        "account.renewal_date - now > duration(signals.usage.window)",
    ],
)
def test_dyn_is_permissive(source: str) -> None:
    compile_ok(source)


# --- syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message", "line", "column"),
    [
        ("account.tier ==", "unexpected end of expression", 1, 16),
        ('account.tier == "x" account', "unexpected `account`", 1, 21),
        ('account.tier == "ENTERPRISE', "unterminated string literal", 1, 17),
        ("account.tier # 1", "unexpected character `#`", 1, 14),
        ("a &&\n  b ==\n  c d", "unexpected `d`", 3, 5),
        ("", "expression is empty", 1, 1),
        ("   \n ", "expression is empty", 1, 1),
    ],
)
def test_syntax_errors(source: str, message: str, line: int, column: int) -> None:
    problem = only_problem(source)
    assert (problem.code, problem.message, problem.line, problem.column) == (
        "PP401",
        message,
        line,
        column,
    )
    assert "\n" not in problem.message and "^" not in problem.message


def test_syntax_error_hint_names_what_was_expected() -> None:
    assert only_problem("account.tier == 'x' ? true").hint == "expected `:`"


def test_literal_problems_are_syntax_errors() -> None:
    assert only_problem("plan.age_days > 99999999999999999999").message == (
        "number `99999999999999999999` is out of range"
    )
    problem = only_problem('timestamp("2025-13-01T00:00:00Z") < now')
    assert (problem.code, problem.column) == ("PP401", 11)
    assert problem.message == "invalid timestamp `2025-13-01T00:00:00Z`"
    assert only_problem('now - account.renewal_date < duration("3 days")').code == "PP401"


def test_non_portable_duration_unit_is_a_warning() -> None:
    result = ENV.compile('account.renewal_date - now < duration("30d")')
    assert result.expr is not None
    (problem,) = result.problems
    assert (problem.code, problem.line, problem.column) == ("PP407", 1, 39)
    assert problem.message == "duration unit `d` is not portable CEL, use hours (`720h`)"
    assert not problem.is_error


def test_deep_nesting_is_reported_not_raised() -> None:
    deep = "(" * 300 + "true" + ")" * 300
    problem = only_problem(deep)
    assert (problem.code, problem.message) == ("PP401", "expression is nested too deeply")
    shallow = "(" * 20 + "true" + ")" * 20
    assert compile_ok(shallow).evaluate(make_activation({})).value is True


def test_non_text_source_is_a_problem() -> None:
    result = ENV.compile(True)  # type: ignore[arg-type]  # YAML `when: true`
    assert result.expr is None
    assert result.problems[0].code == "PP401"


# --- what an expression references ----------------------------------------------------


def test_roots_and_paths() -> None:
    expr = compile_ok(
        'account.renewal_date - now < duration("720h") && '
        'signals.tickets.exists(t, t.priority == "P1") && plan.steps["kickoff"].status == "done"'
    )
    assert expr.roots == frozenset({"account", "now", "signals", "plan"})
    assert expr.paths == frozenset(
        {
            ("account", "renewal_date"),
            ("now",),
            ("signals", "tickets"),
            ("signals", "tickets", "*", "priority"),
            ("plan", "steps", "kickoff", "status"),
        }
    )
    assert not expr.is_constant


def test_has_records_the_path() -> None:
    assert compile_ok("has(account.tier)").paths == frozenset({("account", "tier")})


def test_constant_expressions() -> None:
    expr = compile_ok("1 + 1 == 3 || [1, 2].exists(x, x > 5)")
    assert expr.is_constant
    assert expr.roots == frozenset()
    assert expr.evaluate(make_activation({})).value is False
    assert not compile_ok("now > now").is_constant


# --- evaluation errors ---------------------------------------------------------------------


def test_missing_key_is_an_error_result_without_customer_data() -> None:
    context = sample_context()
    del context["account"]["renewal_date"]
    expr = compile_ok('account.renewal_date - now < duration("720h")')
    result = expr.evaluate(make_activation(context))
    assert not result.ok
    assert result.value is None
    assert result.error == "no such key `renewal_date` in `account`"
    for leaked in (SECRET_NOTE, "ENTERPRISE", "125000", "Traceback", "Activation", "P1"):
        assert leaked not in (result.error or "")


def test_missing_variable_is_an_error_result_without_customer_data() -> None:
    context = {"account": sample_context()["account"]}
    result = compile_ok("plan.age_days > 3").evaluate(make_activation(context))
    assert result.error == "no such variable `plan`"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("plan.age_days / (plan.age_days - 12) > 1", "division by zero in"),
        ('plan.steps["review"].status == "done"', 'no such key `"review"` in `plan.steps`'),
        ('signals.tickets[7].priority == "P1"', "index out of range: `7` in `signals.tickets`"),
        ("timestamp(account.tier) < now", "invalid argument for `timestamp`"),
        ("signals.usage.missing > 1", "no such key `missing` in `signals.usage`"),
    ],
)
def test_evaluation_errors(source: str, error: str, activation: Any) -> None:
    result = compile_ok(source).evaluate(activation)
    assert not result.ok
    assert result.error is not None and result.error.startswith(error)
    assert SECRET_NOTE not in result.error


def test_errors_inside_results_are_errors() -> None:
    result = compile_ok('{"a": 1 / 0}', expect_bool=False).evaluate(make_activation({}))
    assert result.error == "division by zero in `1 / 0`"


def test_errors_are_absorbed_by_logic_like_cel() -> None:
    context = sample_context()
    del context["account"]["tier"]
    result = compile_ok('account.tier == "X" || true').evaluate(make_activation(context))
    assert result.ok and result.value is True


def test_runtime_int_in_a_double_field_without_declared_types_is_an_error_not_a_crash() -> None:
    context = sample_context()
    context["account"]["arr"] = 125000
    expr = compile_ok("account.arr > 1.0")
    assert not expr.evaluate(make_activation(context)).ok
    assert expr.evaluate(make_activation(context, types=CONTEXT_TYPES)).value is True


def test_evaluation_is_thread_safe(activation: Any) -> None:
    expr = compile_ok('signals.tickets.exists(t, t.priority == "P1") && account.arr > 1.0')
    results: list[Any] = []

    def work() -> None:
        results.extend(expr.evaluate(activation).value for _ in range(25))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 200


# --- activations -----------------------------------------------------------------------------


def test_make_activation_normalises_dates_decimals_and_collections() -> None:
    activation = make_activation(
        {
            "d": dt.date(2025, 12, 31),
            "naive": dt.datetime(2025, 1, 1, 9, 30),
            "money": Decimal("12.50"),
            "tags": ("a", "b"),
            "ids": {3, 1, 2},
            "iso": "2025-01-01T00:00:00Z",
        }
    )
    env = CelEnvironment(ObjectType({}, open=True))

    def value(source: str) -> Any:
        result = env.compile(source, expect_bool=False)
        assert result.expr is not None, result.problems
        evaluated = result.expr.evaluate(activation)
        assert evaluated.ok, evaluated.error
        return evaluated.value

    assert value("d") == dt.datetime(2025, 12, 31, tzinfo=UTC)
    assert value("naive") == dt.datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
    assert value("money") == 12.5
    assert value("tags") == ["a", "b"]
    assert value("ids") == [1, 2, 3]
    assert value("iso") == "2025-01-01T00:00:00Z"  # strings are never parsed


def test_make_activation_only_converts_the_named_roots() -> None:
    activation = make_activation(sample_context(), only=["now", "missing"])
    assert activation.names == frozenset({"now"})
    assert SECRET_NOTE not in repr(activation)


def test_make_activation_with_types_coerces_numbers() -> None:
    context = sample_context()
    context["account"]["arr"] = 125000
    context["account"]["health_score"] = 42.0
    activation = make_activation(context, types=CONTEXT_TYPES)
    assert (
        compile_ok("account.arr == 125000.0 && account.health_score == 42")
        .evaluate(activation)
        .value
    )


def test_make_activation_rejects_unsupported_values_naming_the_path_only() -> None:
    with pytest.raises(TypeError, match=r"`account\.blob`") as caught:
        make_activation({"account": {"blob": object(), "notes": SECRET_NOTE}})
    assert SECRET_NOTE not in str(caught.value)
    with pytest.raises(ValueError, match=r"64-bit range at `signals\.tickets\[1\]\.n`"):
        make_activation({"signals": {"tickets": [{"n": 1}, {"n": 2**70}]}})


# --- compile once ---------------------------------------------------------------------------


def test_identical_expressions_compile_once_per_context_type() -> None:
    clear_compile_cache()
    first = ENV.compile("plan.age_days > 3")
    assert ENV.compile("plan.age_days > 3") is first
    other_bundle = CelEnvironment(types_from_schema(SCHEMA))
    assert other_bundle.compile("plan.age_days > 3") is first
    assert ENV.compile("plan.age_days > 3", expect_bool=False) is not first
    different = CelEnvironment(ObjectType({"plan": DYN}))
    assert different.compile("plan.age_days > 3") is not first


# --- robustness ------------------------------------------------------------------------------

CEL_PIECES = st.sampled_from(
    [
        "account",
        "signals",
        "plan",
        "now",
        "t",
        ".",
        "tier",
        "tickets",
        "exists",
        "map",
        "has",
        "size",
        "duration",
        "timestamp",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "?",
        " ",
        "\n",
        "==",
        "<",
        "in",
        "&&",
        "||",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "1",
        "2.5",
        "3u",
        '"30d"',
        '"P1"',
        "'x'",
        "b'y'",
        "true",
        "null",
        '"',
        "//",
        "\\",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_compile_never_raises_on_arbitrary_text(source: str) -> None:
    result = ENV.compile(source)
    assert (result.expr is None) == any(p.is_error for p in result.problems)
    for problem in result.problems:
        assert problem.line >= 1 and problem.column >= 1
        assert problem.message != "the expression could not be checked"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CEL_PIECES, max_size=14).map("".join))
def test_compile_and_evaluate_never_raise_on_cel_like_text(source: str) -> None:
    result = ENV.compile(source, expect_bool=False)
    for problem in result.problems:
        assert problem.message != "the expression could not be checked"
    if result.expr is not None:
        evaluated = result.expr.evaluate(make_activation(sample_context()))
        assert evaluated.ok or evaluated.error
