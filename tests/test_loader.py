"""Tests for :mod:`planpolicy.loader`: positions, diagnostics and hostile input."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planpolicy.diagnostics import Diagnostic, DiagnosticSink
from planpolicy.loader import (
    LoadLimits,
    NodeMark,
    SourceDocument,
    SourceFile,
    discover,
    load_file,
    load_text,
)

# -- helpers -------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def load(
    tmp_path: Path, text: str | bytes, *, limits: LoadLimits | None = None
) -> tuple[SourceFile | None, list[Diagnostic]]:
    path = write(tmp_path, text)
    sink = DiagnosticSink()
    if limits is None:
        loaded = load_file(path, sink, display_path="policy.yaml")
    else:
        loaded = load_file(path, sink, display_path="policy.yaml", limits=limits)
    return loaded, list(sink)


def load_ok(tmp_path: Path, text: str) -> SourceDocument:
    loaded, diagnostics = load(tmp_path, text)
    assert diagnostics == []
    assert loaded is not None
    assert len(loaded.documents) == 1
    return loaded.documents[0]


def codes(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    result = []
    for diagnostic in diagnostics:
        assert diagnostic.location is not None
        result.append((diagnostic.code, diagnostic.location.line, diagnostic.location.column))
    return result


def assert_message_style(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        assert diagnostic.message == diagnostic.message.strip()
        assert not diagnostic.message.endswith(".")
        assert diagnostic.message[0] == diagnostic.message[0].lower()
        assert diagnostic.location is not None
        assert diagnostic.location.file == "policy.yaml"


def pos(doc: SourceDocument, path: tuple[str | int, ...]) -> tuple[int, int]:
    loc = doc.location(path)
    return loc.line, loc.column


def key_pos(doc: SourceDocument, path: tuple[str | int, ...]) -> tuple[int, int]:
    loc = doc.key_location(path)
    return loc.line, loc.column


def text_at(doc: SourceDocument, line: int, column: int, size: int) -> str:
    return doc.lines[line - 1][column - 1 : column - 1 + size]


# -- data and positions ----------------------------------------------------------

NESTED = """\
# a policy
id: pricing
rules:
  - name: first
    limits: {low: 1, high: 2.5}
    flags: [yes, off, ~, "x"]
  - name: second
    nested:
      deeper:
        - - 42
          - leaf
"""


def test_data_is_plain_json_compatible(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, NESTED)
    assert doc.data == {
        "id": "pricing",
        "rules": [
            {"name": "first", "limits": {"low": 1, "high": 2.5}, "flags": [True, False, None, "x"]},
            {"name": "second", "nested": {"deeper": [[42, "leaf"]]}},
        ],
    }
    assert doc.path == "policy.yaml"
    assert doc.index == 0
    assert doc.lines[0] == "# a policy"
    assert len(doc.lines) == 11


def test_value_positions_in_nested_mappings_and_sequences(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, NESTED)
    assert pos(doc, ("id",)) == (2, 5)
    assert pos(doc, ("rules",)) == (4, 3)
    assert pos(doc, ("rules", 0)) == (4, 5)
    assert pos(doc, ("rules", 0, "name")) == (4, 11)
    assert pos(doc, ("rules", 0, "limits")) == (5, 13)
    assert pos(doc, ("rules", 0, "limits", "high")) == (5, 28)
    assert text_at(doc, 5, 28, 3) == "2.5"
    assert pos(doc, ("rules", 0, "flags", 3)) == (6, 26)
    assert text_at(doc, 6, 26, 3) == '"x"'
    assert pos(doc, ("rules", 1, "nested", "deeper", 0, 0)) == (10, 13)
    assert pos(doc, ("rules", 1, "nested", "deeper", 0, 1)) == (11, 13)
    assert text_at(doc, 11, 13, 4) == "leaf"


def test_key_positions(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, NESTED)
    assert key_pos(doc, ("id",)) == (2, 1)
    assert key_pos(doc, ("rules", 0, "name")) == (4, 5)
    assert key_pos(doc, ("rules", 0, "limits", "high")) == (5, 22)
    assert key_pos(doc, ("rules", 1, "nested", "deeper")) == (9, 7)
    # a sequence item has no key: falls back to the value position
    assert key_pos(doc, ("rules", 1)) == (7, 5)


def test_location_falls_back_to_nearest_ancestor_and_root(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, NESTED)
    assert pos(doc, ("rules", 0, "missing", "deeper")) == (4, 5)
    assert pos(doc, ("rules", 7)) == (4, 3)
    assert pos(doc, ("nope",)) == (2, 1)
    assert pos(doc, ()) == (2, 1)
    empty_marks = SourceDocument("x.yaml", 0, {}, {}, {}, ())
    assert empty_marks.location(("a",)).line == 1
    assert empty_marks.location(()).column == 1


def test_marks_record_style_and_end(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, "a: plain\nb: 'single'\nc: \"double\"\nd: |\n  lit\ne: >\n  fold\n")
    styles = {key: doc.marks[(key,)].style for key in "abcde"}
    assert styles == {"a": None, "b": "'", "c": '"', "d": "|", "e": ">"}
    assert doc.marks[()].style is None
    assert doc.marks[("a",)] == NodeMark(1, 4, 1, 9, None)
    assert doc.key_marks[("b",)] == NodeMark(2, 1, 2, 2, None)
    loc = doc.location(("b",))
    assert (loc.end_line, loc.end_column) == (2, 12)
    assert ("a",) in doc.marks
    assert len(doc.key_marks) == 5


def test_non_ascii_crlf_and_bom(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, '\ufeff"é": "ü"\r\nnext: ok\r\n')
    assert doc.data == {"é": "ü", "next": "ok"}
    assert key_pos(doc, ("é",)) == (1, 1)
    assert pos(doc, ("é",)) == (1, 6)
    assert pos(doc, ("next",)) == (2, 7)
    assert doc.lines == ('"é": "ü"', "next: ok")


def test_unicode_line_breaks_count_as_lines(tmp_path: Path) -> None:
    """YAML 1.1 (and PyYAML's marks) also break lines at NEL, LS and PS."""
    doc = load_ok(tmp_path, "a: 1\u2028b: 2\x85c: 3\u2029d: x\n")
    assert doc.data == {"a": 1, "b": 2, "c": 3, "d": "x"}
    assert pos(doc, ("d",)) == (4, 4)
    assert doc.lines == ("a: 1", "b: 2", "c: 3", "d: x")


def test_scalar_resolution_follows_yaml_1_1(tmp_path: Path) -> None:
    doc = load_ok(
        tmp_path,
        "ints: [0, -17, 0x1F, 0o7, 017, 0b101, 1_000, 1:30]\n"
        "floats: [1.5, -2.0e+3, .inf, -.Inf, 1:30.5, 1e3]\n"
        "bools: [yes, No, TRUE, off, On]\n"
        "nulls: [~, null, '']\n"
        "strings: [0o7x, '12', !!str 12, yes please]\n"
        "tagged: [!!int '7', !!float '2', !!bool 'yes', !!null 'x']\n"
        "text: [=, <<]\n",
    )
    data = doc.data
    assert data["ints"] == [0, -17, 31, "0o7", 15, 5, 1000, 90]
    assert data["floats"][:2] == [1.5, -2000.0]
    assert data["floats"][2] == float("inf")
    assert data["floats"][3] == float("-inf")
    assert data["floats"][4] == 90.5
    assert data["floats"][5] == "1e3"  # YAML 1.1 floats need a dot
    assert data["bools"] == [True, False, True, False, True]
    assert data["nulls"] == [None, None, ""]
    assert data["strings"] == ["0o7x", "12", "12", "yes please"]
    assert data["tagged"] == [7, 2.0, True, None]
    assert data["text"] == ["=", "<<"]
    nan = load_ok(tmp_path, "x: .NaN\n").data["x"]
    assert math.isnan(nan)


def test_scalars_match_safe_load(tmp_path: Path) -> None:
    text = (
        "a: [1, +2, -0x_1, 0_7, 190:20:30, 6.8523015e+5, 685.230_15e+03, 685_230.15, "
        "190:20:30.15, -.inf, .5, 0., y, n, Yes, NO, '', ~, Null, 0o12, 1e3]\n"
        "b: {x: !!str 3, y: !!int '0x10', z: !!float '1', w: !!bool 'OFF'}\n"
    )
    assert load_ok(tmp_path, text).data == yaml.safe_load(text)


def test_timestamps_stay_strings(tmp_path: Path) -> None:
    doc = load_ok(
        tmp_path,
        "date: 2024-01-31\n"
        "stamp: 2001-12-14t21:59:43.10-05:00\n"
        "spaced: 2001-12-14 21:59:43.10 -5\n"
        "tagged: !!timestamp 2024-02-29\n"
        "2024-03-01: key\n",
    )
    assert doc.data == {
        "date": "2024-01-31",
        "stamp": "2001-12-14t21:59:43.10-05:00",
        "spaced": "2001-12-14 21:59:43.10 -5",
        "tagged": "2024-02-29",
        "2024-03-01": "key",
    }


def test_empty_and_comment_only_files(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "# only a comment\n\n   # another\n")
    assert diagnostics == []
    assert loaded is not None
    assert loaded.documents == ()
    loaded, diagnostics = load(tmp_path, "")
    assert diagnostics == []
    assert loaded is not None
    assert loaded.documents == ()


def test_null_document_is_kept(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "--- ~\n")
    assert diagnostics == []
    assert loaded is not None
    assert [doc.data for doc in loaded.documents] == [None]


# -- expression positions --------------------------------------------------------

EXPRS = """\
rules:
  plain: a.b + c
  single: 'x == ''y'' && z'
  double: "x == \\"y\\" && \\u00e9z"
  tagged: !!str &anchor q + r
  lit: |
    first line
      second
    third
  strip: |-
    aa
    bb
  keep: |+
    kk

  explicit: |2
      deep
    shallow
  folded: >
    one two
    three four

    five
  multi: this is
    a multi line
    plain
  quoted_multi: "first
    second x"
  list:
    - inner + x
  number: 12
"""


@pytest.fixture()
def exprs(tmp_path: Path) -> SourceDocument:
    return load_ok(tmp_path, EXPRS)


def expr_check(doc: SourceDocument, key: str, line: int, column: int, expect: str) -> None:
    """``expect`` is at (line, column) of the value and at the mapped file position."""
    value = doc.data["rules"][key]
    assert value.split("\n")[line - 1][column - 1 :].startswith(expect)
    loc = doc.expr_location(("rules", key), line, column)
    assert loc.file == "policy.yaml"
    assert text_at(doc, loc.line, loc.column, len(expect)) == expect, (loc, expect)


def test_expr_location_plain(exprs: SourceDocument) -> None:
    loc = exprs.expr_location(("rules", "plain"), 1, 5)
    assert (loc.line, loc.column) == (2, 14)
    expr_check(exprs, "plain", 1, 1, "a.b")
    expr_check(exprs, "plain", 1, 7, "c")


def test_expr_location_quoted(exprs: SourceDocument) -> None:
    loc = exprs.expr_location(("rules", "single"), 1, 1)
    assert (loc.line, loc.column) == (3, 12)  # +1 for the quote
    expr_check(exprs, "single", 1, 6, "'")
    expr_check(exprs, "single", 1, 13, "z")
    loc = exprs.expr_location(("rules", "double"), 1, 1)
    assert (loc.line, loc.column) == (4, 12)
    expr_check(exprs, "double", 1, 10, "&&")
    loc = exprs.expr_location(("rules", "double"), 1, 10)
    assert (loc.line, loc.column) == (4, 23)
    # after escapes the value is shorter than the source
    loc = exprs.expr_location(("rules", "double"), 1, 13)
    assert (loc.line, loc.column) == (4, 26)
    assert text_at(exprs, 4, 26, 6) == "\\u00e9"


def test_expr_location_skips_tag_and_anchor(exprs: SourceDocument) -> None:
    assert exprs.marks[("rules", "tagged")].column == 11  # PyYAML marks start at the tag
    expr_check(exprs, "tagged", 1, 1, "q + r")
    expr_check(exprs, "tagged", 1, 5, "r")


def test_expr_location_literal_blocks(exprs: SourceDocument) -> None:
    loc = exprs.expr_location(("rules", "lit"), 1, 1)
    assert (loc.line, loc.column) == (7, 5)
    loc = exprs.expr_location(("rules", "lit"), 2, 3)
    assert (loc.line, loc.column) == (8, 7)  # the value line keeps its extra indentation
    expr_check(exprs, "lit", 2, 3, "second")
    expr_check(exprs, "lit", 3, 1, "third")
    expr_check(exprs, "strip", 2, 2, "b")
    expr_check(exprs, "keep", 1, 1, "kk")
    loc = exprs.expr_location(("rules", "strip"), 2, 1)
    assert (loc.line, loc.column) == (12, 5)


def test_expr_location_literal_with_indentation_indicator(exprs: SourceDocument) -> None:
    assert exprs.data["rules"]["explicit"] == "  deep\nshallow\n"
    loc = exprs.expr_location(("rules", "explicit"), 1, 1)
    assert (loc.line, loc.column) == (17, 5)
    expr_check(exprs, "explicit", 1, 3, "deep")
    expr_check(exprs, "explicit", 2, 1, "shallow")


def test_expr_location_folded_and_multiline_best_effort(exprs: SourceDocument) -> None:
    assert exprs.data["rules"]["folded"] == "one two three four\nfive\n"
    expr_check(exprs, "folded", 1, 9, "three")
    expr_check(exprs, "folded", 2, 1, "five")
    assert exprs.data["rules"]["multi"] == "this is a multi line plain"
    expr_check(exprs, "multi", 1, 11, "multi")
    expr_check(exprs, "multi", 1, 22, "plain")
    assert exprs.data["rules"]["quoted_multi"] == "first second x"
    expr_check(exprs, "quoted_multi", 1, 7, "second")


def test_expr_location_in_sequence_item(exprs: SourceDocument) -> None:
    loc = exprs.expr_location(("rules", "list", 0), 1, 7)
    assert (loc.line, loc.column) == (30, 13)


def test_expr_location_falls_back_without_raising(exprs: SourceDocument) -> None:
    fallback = exprs.location(("rules", "plain"))
    assert exprs.expr_location(("rules", "plain"), 5, 1) == fallback
    assert exprs.expr_location(("rules", "plain"), 0, 0) == fallback
    # column past the end clamps to the end of the line
    loc = exprs.expr_location(("rules", "plain"), 1, 99)
    assert (loc.line, loc.column) == (2, 17)
    assert exprs.expr_location(("rules", "number"), 1, 1) == exprs.location(("rules", "number"))
    assert exprs.expr_location(("rules", "list"), 1, 1) == exprs.location(("rules", "list"))
    assert exprs.expr_location(("rules", "missing"), 1, 1) == exprs.location(("rules",))
    assert exprs.expr_location(("rules", "list", 9), 1, 1) == exprs.location(("rules", "list"))


# -- diagnostics -----------------------------------------------------------------


def test_syntax_error_pp101(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "a: 1\nb: c: d\n")
    assert loaded is None
    assert codes(diagnostics) == [("PP101", 2, 5)]
    assert diagnostics[0].message.startswith("yaml syntax error: mapping values are not allowed")
    assert_message_style(diagnostics)


def test_syntax_error_with_context_has_hint(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, 'a: "unterminated\nb: 2\n')
    assert loaded is None
    assert [d.code for d in diagnostics] == ["PP101"]
    assert diagnostics[0].hint is not None
    assert "line 1, column 4" in diagnostics[0].hint
    assert_message_style(diagnostics)


def test_undefined_alias_and_duplicate_anchor_pp101(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "a: *nowhere\n")
    assert loaded is None
    assert codes(diagnostics) == [("PP101", 1, 4)]
    loaded, diagnostics = load(tmp_path, "a: &x 1\nb: &x 2\n")
    assert loaded is None
    assert codes(diagnostics) == [("PP101", 2, 4)]
    assert diagnostics[0].message == "yaml syntax error: duplicate anchor `x`"
    assert diagnostics[0].hint == "first defined on line 1"


def test_control_character_pp101(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, 'a: 1\nb: "x\x07"\n')
    assert loaded is None
    assert codes(diagnostics) == [("PP101", 2, 6)]
    assert "`U+0007`" in diagnostics[0].message
    assert_message_style(diagnostics)


def test_duplicate_key_pp102(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "name: a\nother: 1\nsub:\n  x: 1\n  x: 2\nname: b\n")
    assert loaded is not None
    assert codes(diagnostics) == [("PP102", 5, 3), ("PP102", 6, 1)]
    assert diagnostics[0].message == "duplicate key `x`"
    assert diagnostics[1].message == "duplicate key `name`"
    assert diagnostics[1].hint is not None
    assert "line 1" in diagnostics[1].hint
    # the first occurrence wins, and positions point at it
    doc = loaded.documents[0]
    assert doc.data == {"name": "a", "other": 1, "sub": {"x": 1}}
    assert pos(doc, ("name",)) == (1, 7)
    assert_message_style(diagnostics)


def test_unsafe_tags_are_refused_pp103(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'!!python/object/apply:os.system ["touch {marker}"]\n'
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [("PP103", 1, 1)]
    assert diagnostics[0].message == "unsupported tag `!!python/object/apply:os.system`"
    assert loaded is not None
    assert loaded.documents[0].data is None
    assert not marker.exists()
    assert_message_style(diagnostics)


def test_other_tags_pp103(tmp_path: Path) -> None:
    text = (
        "ok: 1\n"
        "custom: !custom x\n"
        "set: !!set {a, b}\n"
        "omap: !!omap [a: 1]\n"
        "bin: !!binary aGVsbG8=\n"
        "obj: !!python/object:os.system {}\n"
        "items: [1, !!python/name:os.system '', 3]\n"
    )
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [
        ("PP103", 2, 9),
        ("PP103", 3, 6),
        ("PP103", 4, 7),
        ("PP103", 5, 6),
        ("PP103", 6, 6),
        ("PP103", 7, 12),
    ]
    assert [d.message for d in diagnostics[:2]] == [
        "unsupported tag `!custom`",
        "unsupported tag `!!set`",
    ]
    assert loaded is not None
    doc = loaded.documents[0]
    # refused values are absent from mappings, null in sequences
    assert doc.data == {"ok": 1, "items": [1, None, 3]}
    assert pos(doc, ("custom",)) == (2, 9)
    assert_message_style(diagnostics)


def test_merge_keys_pp103(tmp_path: Path) -> None:
    text = 'base: &base {a: 1}\nuse:\n  <<: *base\n  b: 2\nquoted:\n  "<<": text\n'
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [("PP103", 3, 3)]
    assert diagnostics[0].message == "merge keys (`<<`) are not supported"
    assert loaded is not None
    assert loaded.documents[0].data == {"base": {"a": 1}, "use": {"b": 2}, "quoted": {"<<": "text"}}


def test_nesting_deeper_than_limit_pp104(tmp_path: Path) -> None:
    limits = LoadLimits(max_depth=3)
    loaded, diagnostics = load(
        tmp_path, "a:\n  b:\n    c: 1\n---\na:\n  b:\n    c:\n      d: 1\n", limits=limits
    )
    assert codes(diagnostics) == [("PP104", 8, 7)]
    assert diagnostics[0].message == "nesting deeper than 3 levels"
    assert loaded is not None  # only the offending document is dropped
    assert [doc.index for doc in loaded.documents] == [0]
    assert_message_style(diagnostics)


def test_default_depth_limit(tmp_path: Path) -> None:
    ok = "[" * 64 + "]" * 64
    loaded, diagnostics = load(tmp_path, ok)
    assert diagnostics == []
    assert loaded is not None
    deep = "[" * 65 + "]" * 65
    loaded, diagnostics = load(tmp_path, deep)
    assert codes(diagnostics) == [("PP104", 1, 65)]


def test_nesting_through_aliases_pp104(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 80)]
    loaded, diagnostics = load(tmp_path, "\n".join(lines) + "\n")
    assert [d.code for d in diagnostics] == ["PP104"]
    assert loaded is not None
    assert loaded.documents == ()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[" * 100_000 + "]" * 100_000, (1, 65)),
        ("{a: " * 50_000 + "}" * 50_000, (1, 4 * 64 + 1)),
        ("- " * 100_000 + "x\n", (1, 129)),
        ("".join(" " * i + "k:\n" for i in range(1200)), (65, 65)),
        ("a: " + "[" * 100_000, (1, 67)),
    ],
    ids=["flow-sequence", "flow-mapping", "block-sequence", "indentation", "unclosed"],
)
def test_hostile_nesting_refused_without_traceback(
    tmp_path: Path, text: str, where: tuple[int, int]
) -> None:
    start = time.perf_counter()
    loaded, diagnostics = load(tmp_path, text)
    elapsed = time.perf_counter() - start
    assert loaded is None or loaded.documents == ()
    assert codes(diagnostics) == [("PP104", *where)]
    assert elapsed < 2.0
    assert_message_style(diagnostics)


def test_file_too_large_pp105(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "a: " + "x" * 100 + "\n", limits=LoadLimits(max_bytes=50))
    assert loaded is None
    assert codes(diagnostics) == [("PP105", 1, 1)]
    assert "50 bytes" in diagnostics[0].message
    assert_message_style(diagnostics)


def test_huge_sparse_file_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(4_000_000_000)
    sink = DiagnosticSink()
    start = time.perf_counter()
    assert load_file(path, sink) is None
    assert time.perf_counter() - start < 1.0
    assert [d.code for d in sink] == ["PP105"]


def test_text_too_large_pp105() -> None:
    sink = DiagnosticSink()
    assert load_text("a: ééé\n", "policy.yaml", sink, limits=LoadLimits(max_bytes=8)) is None
    assert codes(list(sink)) == [("PP105", 1, 1)]
    sink = DiagnosticSink()
    assert load_text("a: ééé\n", "policy.yaml", sink, limits=LoadLimits(max_bytes=10)) is not None


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


def test_billion_laughs_refused_fast_pp106(tmp_path: Path) -> None:
    start = time.perf_counter()
    loaded, diagnostics = load(tmp_path, "ok: 1\n---\n" + billion_laughs())
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    # points at the value holding the aliases that overflow, not into the anchor
    assert codes(diagnostics) == [("PP106", 8, 4)]
    assert diagnostics[0].message == "document expands to more than 200000 nodes (alias bomb?)"
    assert loaded is not None
    assert [doc.data for doc in loaded.documents] == [{"ok": 1}]
    assert_message_style(diagnostics)


def test_node_budget_counts_expanded_nodes(tmp_path: Path) -> None:
    text = "base: &b [1, 2, 3]\nuse: [*b, *b, *b]\n"
    # 1 root + 2 keys + base (4) + use (1 + 3 * 4) = 20 nodes
    loaded, diagnostics = load(tmp_path, text, limits=LoadLimits(max_nodes=20))
    assert diagnostics == []
    assert loaded is not None
    assert loaded.documents[0].data == {"base": [1, 2, 3], "use": [[1, 2, 3]] * 3}
    # an alias expansion points at the anchor's text
    assert pos(loaded.documents[0], ("use", 2, 1)) == (1, 14)
    loaded, diagnostics = load(tmp_path, text, limits=LoadLimits(max_nodes=19))
    assert codes(diagnostics) == [("PP106", 2, 6)]
    assert loaded is not None
    assert loaded.documents == ()


def test_node_budget_without_aliases(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "[1, 2, 3, 4, 5]", limits=LoadLimits(max_nodes=4))
    assert codes(diagnostics) == [("PP106", 1, 11)]
    assert loaded is not None
    assert loaded.documents == ()


def test_recursive_alias_pp106(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "a: &a [1, *a]\nb: 2\n")
    assert codes(diagnostics) == [("PP106", 1, 4)]
    assert "recursive alias" in diagnostics[0].message
    assert loaded is not None
    assert loaded.documents == ()
    _, diagnostics = load(tmp_path, "a: &m {self: *m}\n")
    assert codes(diagnostics) == [("PP106", 1, 4)]


def test_non_string_keys_pp107(tmp_path: Path) -> None:
    text = "1: one\non: yes\n~: none\n2.5: x\n? [a, b]\n: list\n? {a: 1}\n: map\ngood: 1\n"
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [
        ("PP107", 1, 1),
        ("PP107", 2, 1),
        ("PP107", 3, 1),
        ("PP107", 4, 1),
        ("PP107", 5, 3),
        ("PP107", 7, 3),
    ]
    assert diagnostics[1].message == "mapping keys must be strings, `on` is read as a boolean"
    assert diagnostics[1].hint == 'quote the key to use it as text: `"on"`'
    assert diagnostics[4].message == "mapping keys must be strings, not a sequence"
    assert loaded is not None
    assert loaded.documents[0].data == {"good": 1}
    assert_message_style(diagnostics)


def test_empty_key_pp107(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "? \n: value\n")
    assert [d.code for d in diagnostics] == ["PP107"]
    assert diagnostics[0].message == "mapping keys must be strings, this key is empty"
    assert loaded is not None


def test_unreadable_file_pp108(tmp_path: Path) -> None:
    sink = DiagnosticSink()
    assert load_file(tmp_path / "missing.yaml", sink, display_path="policy.yaml") is None
    assert codes(list(sink)) == [("PP108", 1, 1)]
    assert sink.items[0].message == "cannot read file: no such file or directory"
    sink = DiagnosticSink()
    assert load_file(tmp_path, sink, display_path="policy.yaml") is None
    assert sink.items[0].message == "cannot read file: it is a directory"
    assert_message_style(list(sink))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_does_not_hang_pp108(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    sink = DiagnosticSink()
    assert load_file(fifo, sink) is None
    assert [d.code for d in sink] == ["PP108"]


def test_invalid_utf8_pp108(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, b"a: 1\nb: caf\xe9\n")
    assert loaded is None
    assert codes(diagnostics) == [("PP108", 2, 7)]
    assert diagnostics[0].message == "file is not valid utf-8 (byte `0xe9`)"
    assert_message_style(diagnostics)
    loaded, diagnostics = load(tmp_path, "a: 1\n".encode("utf-16"))
    assert loaded is None
    assert [d.code for d in diagnostics] == ["PP108"]
    assert diagnostics[0].hint is not None
    assert "utf-16" in diagnostics[0].hint


def test_too_many_documents_pp109(tmp_path: Path) -> None:
    loaded, diagnostics = load(
        tmp_path, "a: 1\n---\nb: 2\n---\nc: 3\n", limits=LoadLimits(max_documents=2)
    )
    assert loaded is None
    assert codes(diagnostics) == [("PP109", 5, 1)]
    assert_message_style(diagnostics)


def test_many_empty_documents_refused_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    loaded, diagnostics = load(tmp_path, "---\n" * 200_000)
    assert time.perf_counter() - start < 1.0
    assert loaded is None
    assert [d.code for d in diagnostics] == ["PP109"]


def test_invalid_tagged_scalars_pp110(tmp_path: Path) -> None:
    text = "a: !!int abc\nb: !!float x\nc: !!bool maybe\nd: 0b_\ne: " + "9" * 5000 + "\n"
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [
        ("PP110", 1, 4),
        ("PP110", 2, 4),
        ("PP110", 3, 4),
        ("PP110", 4, 4),
        ("PP110", 5, 4),
    ]
    assert diagnostics[0].message == "`abc` is not a valid integer"
    assert loaded is not None
    assert loaded.documents[0].data == {}
    assert_message_style(diagnostics)


def test_sexagesimal_bomb_is_bounded(tmp_path: Path) -> None:
    start = time.perf_counter()
    _, diagnostics = load(tmp_path, "a: 1" + ":59" * 300_000 + "\n")
    assert time.perf_counter() - start < 2.0
    assert [d.code for d in diagnostics] == ["PP110"]


# -- multi-document files --------------------------------------------------------


def test_multi_document_file(tmp_path: Path) -> None:
    text = "# header\n---\nkind: a\n---\n# empty\n---\nkind: c\nvalue: x\n...\n"
    loaded, diagnostics = load(tmp_path, text)
    assert diagnostics == []
    assert loaded is not None
    assert loaded.path == "policy.yaml"
    assert [(doc.index, doc.data) for doc in loaded.documents] == [
        (0, {"kind": "a"}),
        (2, {"kind": "c", "value": "x"}),
    ]
    third = loaded.documents[1]
    assert pos(third, ("value",)) == (8, 8)
    assert pos(third, ()) == (7, 1)
    assert third.lines is loaded.documents[0].lines


def test_syntax_error_in_later_document_refuses_file(tmp_path: Path) -> None:
    loaded, diagnostics = load(tmp_path, "a: 1\n---\nb: [\n")
    assert loaded is None
    assert [d.code for d in diagnostics] == ["PP101"]


def test_bad_document_does_not_hide_good_ones(tmp_path: Path) -> None:
    text = "a: 1\n---\n&r [*r]\n---\nb: !!int x\nc: 2\n"
    loaded, diagnostics = load(tmp_path, text)
    assert [d.code for d in diagnostics] == ["PP106", "PP110"]
    assert loaded is not None
    assert [(doc.index, doc.data) for doc in loaded.documents] == [(0, {"a": 1}), (2, {"c": 2})]


# -- discover --------------------------------------------------------------------


def test_discover(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in [
        "b.yaml",
        "a.yml",
        "notes.txt",
        "sub/c.YAML",
        "sub/deeper/d.yaml",
        ".hidden/e.yaml",
        ".dot.yaml",
    ]:
        (tmp_path / name).write_text("x: 1\n")
    explicit = tmp_path / "notes.txt"
    found = discover([tmp_path, explicit, tmp_path / "b.yaml", str(tmp_path / "sub")])
    assert found == sorted(found)
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "a.yml",
        "b.yaml",
        "notes.txt",
        "sub/c.YAML",
        "sub/deeper/d.yaml",
    ]
    assert discover([]) == []
    assert discover([tmp_path / ".hidden"]) == [tmp_path / ".hidden" / "e.yaml"]


def _discover_resolving_each(paths: list[Path]) -> list[Path]:
    """Discovery as it was first written: every candidate's real path from ``resolve()``."""
    found: list[Path] = []
    for root in paths:
        if not root.is_dir():
            found.append(root)
            continue
        for directory, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
            found += [
                Path(directory, name)
                for name in filenames
                if not name.startswith(".") and name.lower().endswith((".yaml", ".yml"))
            ]
    result: list[Path] = []
    seen: set[Path] = set()
    for candidate in sorted(found):
        if candidate.resolve() not in seen:
            seen.add(candidate.resolve())
            result.append(candidate)
    return result


def test_discover_counts_each_real_file_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "a.yaml").write_text("x: 1\n")
    (real / "sub" / "b.yaml").write_text("x: 1\n")
    (tmp_path / "link.yaml").symlink_to(real / "a.yaml")  # a file link: its target counts
    (tmp_path / "dirlink").symlink_to(real / "sub")  # not followed when walking
    (real / "z.yaml").symlink_to("sub/b.yaml")  # a relative link inside the tree
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "missing.yaml")
    for paths in (
        [tmp_path],
        [tmp_path, real / "sub" / "b.yaml", tmp_path / "dirlink" / "b.yaml"],
        [tmp_path / "dirlink", real],
        [real, tmp_path / "dirlink"],
        [tmp_path / "link.yaml", real / "a.yaml", Path(os.path.relpath(real / "a.yaml"))],
    ):
        assert discover(paths) == _discover_resolving_each(paths)
    names = [path.relative_to(tmp_path).as_posix() for path in discover([tmp_path])]
    assert names == ["broken.yaml", "link.yaml", "real/sub/b.yaml"]


def test_discover_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "nope"])


def test_load_text_matches_load_file(tmp_path: Path) -> None:
    sink = DiagnosticSink()
    loaded = load_text(NESTED, "policy.yaml", sink)
    assert loaded is not None
    assert len(sink) == 0
    assert loaded.documents[0].data == load_ok(tmp_path, NESTED).data


# -- robustness ------------------------------------------------------------------

YAMLISH = st.lists(
    st.sampled_from(
        [
            *"ab01 :-?[]{},&*!|>'\"#\n\t\\~.=<%@`",
            *["!!", "&a ", "*a", "---\n", "\r\n", "é", "  ", "- ", ": ", "\n  ", "|-\n  "],
        ]
    ),
    max_size=40,
).map("".join)


def exercise(loaded: SourceFile | None) -> None:
    """Every position query on a loaded file works and stays inside sane bounds."""
    if loaded is None:
        return
    for doc in loaded.documents:
        for path in [*doc.marks, ("zz", 3)]:
            loc = doc.location(path)
            assert loc.line >= 1
            assert loc.column >= 1
            doc.key_location(path)
            for line, column in ((1, 1), (1, 3), (2, 1), (9, 9)):
                found = doc.expr_location(path, line, column)
                assert found.line >= 1
                assert found.column >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_never_raises(text: str) -> None:
    sink = DiagnosticSink()
    loaded = load_text(text, "policy.yaml", sink)
    assert loaded is not None or sink.has_errors
    exercise(loaded)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH, st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=30))
def test_yamlish_text_never_raises(text: str, depth: int, nodes: int) -> None:
    sink = DiagnosticSink()
    limits = LoadLimits(max_depth=depth, max_nodes=nodes, max_documents=3)
    loaded = load_text(text, "policy.yaml", sink, limits=limits)
    assert loaded is not None or sink.has_errors
    for diagnostic in sink:
        assert diagnostic.location is not None
        assert diagnostic.code.startswith("PP1")
    exercise(loaded)


def test_long_lines_take_the_exact_depth_check(tmp_path: Path) -> None:
    """A long line makes the cheap depth bound useless; results must not change."""
    long_line = "note: " + "x " * 600 + "\n"
    loaded, diagnostics = load(tmp_path, long_line + "deep: " + "[" * 65 + "]" * 65 + "\n")
    assert codes(diagnostics) == [("PP104", 2, 70)]
    assert loaded is not None
    assert loaded.documents == ()
    text = long_line + "---\nok: [[1]]\n---\n" + "[" * 70 + "]" * 70 + "\n"
    loaded, diagnostics = load(tmp_path, text)
    assert codes(diagnostics) == [("PP104", 5, 65)]
    assert loaded is not None
    assert [doc.data for doc in loaded.documents] == [{"note": "x " * 599 + "x"}, {"ok": [[1]]}]


@pytest.fixture()
def pure_python_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with PyYAML's pure-Python loader (no libyaml)."""
    from planpolicy import loader

    monkeypatch.setattr(loader, "_LOADER", yaml.SafeLoader)


@pytest.mark.usefixtures("pure_python_loader")
def test_pure_python_fallback_positions(tmp_path: Path) -> None:
    doc = load_ok(tmp_path, NESTED)
    assert pos(doc, ("rules", 0, "limits", "high")) == (5, 28)
    assert doc.marks[("rules", 0, "name")].style is None
    loaded, diagnostics = load(tmp_path, "a: 1\nb: c: d\n")
    assert loaded is None
    assert codes(diagnostics) == [("PP101", 2, 5)]
    assert diagnostics[0].message == "yaml syntax error: mapping values are not allowed here"


@pytest.mark.usefixtures("pure_python_loader")
@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[" * 600 + "]" * 600, (1, 65)),
        ("- " * 100_000 + "x\n", (1, 129)),
        ("k: " + "[" * 300 + "]" * 300, (1, 67)),
    ],
    ids=["flow", "block", "medium"],
)
def test_pure_python_fallback_hostile_nesting(
    tmp_path: Path, text: str, where: tuple[int, int]
) -> None:
    loaded, diagnostics = load(tmp_path, text)
    assert loaded is None or loaded.documents == ()
    assert codes(diagnostics) == [("PP104", *where)]


@pytest.mark.usefixtures("pure_python_loader")
def test_pure_python_fallback_alias_bomb(tmp_path: Path) -> None:
    start = time.perf_counter()
    _, diagnostics = load(tmp_path, billion_laughs())
    assert time.perf_counter() - start < 0.5
    assert codes(diagnostics) == [("PP106", 6, 4)]
