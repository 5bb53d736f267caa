"""The lark-free CEL parser (planpolicy.celsyntax) builds exactly lark's trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.engine.conftest import REPO

from planpolicy import cel, celsyntax


def _shape(node: Any) -> Any:
    """A tree as comparable data: rule names, children, token types, values and positions."""
    if hasattr(node, "children"):
        return (str(node.data), tuple(_shape(child) for child in node.children))
    fields = ("line", "column", "end_line", "end_column", "start_pos", "end_pos")
    return (node.type, node.value, *(getattr(node, name, None) for name in fields))


def _tables() -> celsyntax.SyntaxTables:
    tables = cel._syntax_tables()
    assert tables is not None, "the shipped cel_syntax.json does not match this grammar/lark"
    return tables


def _lark(source: str) -> Any:
    try:
        return _shape(cel._lark_parser(False).parse(source))
    except Exception as exc:
        return ("error", type(exc).__name__)


def _ours(source: str) -> Any:
    try:
        return _shape(_tables().parse(source))
    except celsyntax.NotParsed:
        return None


def _assert_same(source: str) -> None:
    expected = _lark(source)
    got = _ours(source)
    if expected[0] == "error":
        assert got is None, f"lark refuses {source!r}, the tables parsed it"
    else:
        assert got == expected, source


# Lexing corner cases: contextual terminals, keywords inside names, literals.
CORNERS = [
    "a-1",
    "a - -1",
    "a-1u",
    "1.5 + .5 - 1. * 1e3 / 2.5E-2",
    "x.in",
    "a index",
    "a in [1, 2]",
    "inx in y",
    "null",
    "nullx == null",
    "true && false || !true",
    "x.true",
    "x.null",
    "{'a': 1}.a",
    "{'a': 1, 'b': [true, null]}",
    "b'abc' + b\"x\" + B'''y'''",
    "'''multi\nline''' + r'x' + R\"y\\n\"",
    '"""one\n  two\n""" == "x"',
    '\'\\u00e9\\x41\\101\\n\' == "\\""',
    "f(1, 2, 3)[0].g()",
    "-5u",
    "0x1F + 3u + 0XAb",
    "-0x10",
    "!a || !b ? c : d ? e : f",
    "a // comment\n && b",
    "// leading comment\na",
    "a.b{c: 1, d: 2}",
    "a.b{}",
    ".a.b()",
    ".a(1)",
    "[]",
    "{}",
    "[1,]",
    "a <= b",
    "a >= b != c == d < e > f",
    "1e5 - 2.e3",
    "a\n&&\nb\n\n||   c",
    "size(x) > 3 && x.exists(k, x[k] > 0) && x.all(v, v.matches('^a+$'))",
    'timestamp("2026-01-01T00:00:00Z") + duration("1h") < now',
    "a % b * c / d",
    "((a))",
    "(a",
    "a)",
    "a +",
    "",
    "   ",
    "'unterminated",
    "a @ b",
    "a ? b",
    "1 2",
    "as",
    "a.as",
    "é",
    "a\tb",
]


@pytest.mark.parametrize("source", CORNERS)
def test_corner_cases_match_lark(source: str) -> None:
    _assert_same(source)


def _bundled_expressions() -> list[str]:
    """Every string in the bundled and example YAML that lark parses as CEL."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.strip():
            found.add(value)

    folders = ("policies", "plan_types", "examples")
    for path in sorted(p for folder in folders for p in (REPO / folder).rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            walk(document)
    return sorted(s for s in found if _lark(s)[0] != "error")


def test_every_bundled_expression_parses_as_lark_parses_it() -> None:
    expressions = _bundled_expressions()
    assert len(expressions) > 30
    for source in expressions:
        _assert_same(source)


# Random token soups: mostly invalid text, every terminal, every separator.
_PIECES = [
    "a", "b_2", "in", "index", "null", "true", "false", "as", "x", "size", "has",
    "0", "12", "-3", "0x1f", "7u", "1.5", ".5", "2.", "1e3", "-1.5e-2",
    "'s'", '"t"', "r'\\d'", "b'x'", "'''m\nl'''", "'\\n'",
    "+", "-", "*", "/", "%", "!", "<", "<=", ">", ">=", "==", "!=", "&&", "||",
    "?", ":", ",", ".", "(", ")", "[", "]", "{", "}",
]  # fmt: skip
_SEPARATORS = ["", "", " ", "\n", "  ", "// note\n"]


@st.composite
def _soup(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12))
    out = []
    for piece in pieces:
        out.append(piece)
        out.append(draw(st.sampled_from(_SEPARATORS)))
    return "".join(out)


@st.composite
def _expression(draw: st.DrawFn, depth: int = 0) -> str:
    """Valid CEL built from the grammar's productions."""
    leaves = ["a", "a.b", "x[0]", "1", "-2", "2.5", "'s'", "true", "null", "3u", "[1, 2]", "{}"]
    if depth > 3 or draw(st.booleans()):
        return draw(st.sampled_from(leaves))
    left = draw(_expression(depth + 1))
    right = draw(_expression(depth + 1))
    form = draw(st.integers(0, 9))
    space = draw(st.sampled_from(["", " ", "\n"]))
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "<", "<=", "==", "!=", "in", "&&", "||"]))
    return [
        f"{left}{space}{op}{space}{right}",
        f"({left})",
        f"!{left}",
        f"-{left}",
        f"({left} ? {right} : {left})",
        f"f({left}, {right})",
        f"({left}).m({right})",
        f"[{left}, {right}]",
        f"{{{left}: {right}}}",
        f"a.all(v, {left})",
    ][form]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_soup())
def test_token_soups_parse_or_fail_as_with_lark(source: str) -> None:
    _assert_same(source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expression())
def test_generated_expressions_parse_as_with_lark(source: str) -> None:
    assert _lark(source)[0] != "error", source
    _assert_same(source)


def test_shipped_tables_are_current() -> None:
    shipped = celsyntax.TABLES_FILE.read_text(encoding="utf-8")
    assert shipped == cel.syntax_tables_text(), "run `planpolicy schema --write`"


def test_tables_for_another_grammar_or_lark_are_not_used(tmp_path: Path) -> None:
    data = json.loads(celsyntax.TABLES_FILE.read_text(encoding="utf-8"))
    key = data["key"]
    assert celsyntax.load(key, {"true": "BOOL_LIT"}) is not None
    assert celsyntax.load("another-key", {"true": "BOOL_LIT"}) is None
    broken = tmp_path / "broken.json"
    for text in (
        "not json",
        "[]",
        json.dumps({**data, "format": 99}),
        json.dumps({**data, "rules": 5}),
    ):
        broken.write_text(text, encoding="utf-8")
        assert celsyntax.load(key, {}, broken) is None
    assert celsyntax.load(key, {}, tmp_path / "missing.json") is None


def test_lark_version_is_read_without_importing_lark() -> None:
    import lark

    code = (
        "import sys; from planpolicy import cel; v = cel._lark_version(); "
        "print(v, 'lark' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == [lark.__version__, "False"]


def test_without_tables_expressions_are_checked_with_lark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "_SYNTAX", [None])
    cel.clear_compile_cache()
    try:
        env = cel.CelEnvironment(cel.ObjectType({"a": cel.INT}))
        assert env.compile("a + 1 > 2").ok
        bad = env.compile("a +")
        assert not bad.ok and bad.problems[0].code == "PP401"
    finally:
        cel.clear_compile_cache()


def test_checking_valid_expressions_never_imports_lark(tmp_path: Path) -> None:
    """A lint of valid policies with an empty cache checks every expression lark-free."""
    code = (
        "import sys\n"
        "from planpolicy.cli import main\n"
        "status = main(['lint', sys.argv[1], sys.argv[2]])\n"
        "print(status, 'lark' in sys.modules, 'celpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "policies"), str(REPO / "plan_types")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, cel.CACHE_DIR_ENV: str(tmp_path / "cache")},
    )
    assert out.stdout.split()[-3:] == ["0", "False", "False"], out.stderr
