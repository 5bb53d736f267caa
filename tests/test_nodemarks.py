"""Positions found in the node tree when asked equal those recorded while building.

:mod:`planpolicy.nodemarks` walks a document's node tree along the asked
path. The reference here records every position while walking the tree the
way the loader builds data (the loader's former way), and both must hold the
same paths with the same positions, on hand-written tricky documents and on
generated ones.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import Node, ScalarNode, SequenceNode

from planpolicy import loader
from planpolicy.diagnostics import DiagnosticSink
from planpolicy.loader import LoadLimits, NodeMark, load_text
from planpolicy.nodemarks import JsonPath, ValueMarks, key_text

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

Recorded = tuple[dict[JsonPath, NodeMark], dict[JsonPath, NodeMark]]


def _mark(node: Node, style: Any) -> NodeMark:
    start, end = node.start_mark, node.end_mark
    return NodeMark(start.line + 1, start.column + 1, end.line + 1, end.column + 1, style or None)


def _record(node: Node, path: JsonPath, marks: Recorded) -> None:
    """Record positions the way the loader's builder once did, while building."""
    values, keys = marks
    if isinstance(node, ScalarNode):
        values[path] = _mark(node, node.style)
        return
    values[path] = _mark(node, None)
    if isinstance(node, SequenceNode):
        if node.tag == _SEQ:
            for position, child in enumerate(node.value):
                _record(child, (*path, position), marks)
        return
    if node.tag != _MAP:
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = key_text(key_node)
        if key is None or key in seen:
            continue
        seen.add(key)
        keys[(*path, key)] = _mark(key_node, key_node.style)
        _record(value_node, (*path, key), marks)


def _compare(text: str) -> None:
    loaded = load_text(text, "p.yaml", DiagnosticSink())
    if loaded is None:
        return
    roots = list(yaml.compose_all(text.removeprefix("\ufeff"), Loader=loader._LOADER))
    for doc in loaded.documents:
        expected: Recorded = ({}, {})
        _record(roots[doc.index], (), expected)
        assert dict(doc.marks) == expected[0]
        assert dict(doc.key_marks) == expected[1]
        assert len(doc.marks) == len(expected[0])
        for path, mark in expected[0].items():
            assert path in doc.marks
            assert doc.marks[path] == mark
        for path, mark in expected[1].items():
            assert path in doc.key_marks
            assert doc.key_marks[path] == mark
        for missing in [("zz",), (0, "zz"), (-1,), (99,), ("a", 99), "a", None, (1.5,)]:
            assert (missing in doc.marks) == (missing in expected[0])
            assert (missing in doc.key_marks) == (missing in expected[1])
        with pytest.raises(KeyError):
            doc.marks[("no such key", 1, 2)]
        copied = pickle.loads(pickle.dumps(doc))
        assert dict(copied.marks) == expected[0]
        assert dict(copied.key_marks) == expected[1]


TRICKY = [
    "a: 1\nb: [x, y, {c: d}]\nc: 'q'\nd: !!int '12'\n",
    "a: 1\na: [1, 2]\n",
    "a: 1\n? [1, 2]\n: x\n1: y\nnull: z\n~: w\ntrue: v\n",
    "s: !!set {a, b}\nt: !!omap [a: 1]\nu: !custom {a: 1}\nv: !!binary aGk=\n",
    "<<: {a: 1}\n=: 2\n'=': 3\n'<<': 4\n",
    "2025-01-01: date key\n'2': quoted\n",
    "a: &x {b: [1, 2], c: d}\ne: *x\nf: [*x, *x]\n",
    "- a\n- b: c\n  d: [e]\n- |\n  literal\n- >\n  folded\n",
    "---\na: 1\n---\nb: [1, 2]\n---\n",
    "plain\n",
    "x: !!str\ny: ! 12\n",
    "top: {a: {b: {c: {d: [[[1]]]}}}}\n",
    "\ufeffk: v\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_found_marks_equal_recorded_marks(text: str) -> None:
    _compare(text)


def test_document_with_refused_parts_keeps_their_positions() -> None:
    loaded = load_text("a: !!set {x, y}\nb: !!int abc\n", "p.yaml", DiagnosticSink())
    assert loaded is not None
    doc = loaded.documents[0]
    assert ("a",) in doc.marks and ("b",) in doc.marks
    assert ("a", "x") not in doc.marks
    assert doc.data == {}


def test_marks_of_a_bundled_plan_type_match() -> None:
    with open("plan_types/renewal_defense.yaml", encoding="utf-8") as fh:
        _compare(fh.read())


def test_marks_are_the_same_when_measured_first(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: [1, {b: c}]\nd: e\n"
    before = load_text(text, "p.yaml", DiagnosticSink())

    def measuring_first(*args: object) -> object:
        raise loader._CheckNeeded

    monkeypatch.setattr(loader._DocumentBuilder, "build_counted", measuring_first)
    after = load_text(text, "p.yaml", DiagnosticSink(), limits=LoadLimits())
    assert before is not None and after is not None
    assert dict(before.documents[0].marks) == dict(after.documents[0].marks)
    assert dict(before.documents[0].key_marks) == dict(after.documents[0].key_marks)


def test_repr_and_len() -> None:
    root = yaml.compose("a: [1, 2]\n", Loader=loader._LOADER)
    marks = ValueMarks(root)
    assert len(marks) == 4
    assert len(marks.keys_of()) == 1
    assert repr(marks) == "ValueMarks(4 marks)"


_KEYS = st.sampled_from(["a", "b", "'a'", "1", "~", "<<", "=", "[x]", "!!str 2", "2025-01-01"])
_SCALARS = st.sampled_from(["x", "1", "'q'", '"w"', "~", "!!int z", "!!binary aGk=", "yes"])


def _yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for a generated tree: a list is a sequence, a tuple of pairs a mapping."""
    pad = " " * indent
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            return "[]"
        return "".join(f"\n{pad}- {_yaml(item, indent + 2)}" for item in value)
    if not value:
        return "{}"
    return "".join(f"\n{pad}{key}: {_yaml(item, indent + 2)}" for key, item in value)


_TREES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.lists(st.tuples(_KEYS, children), max_size=4).map(tuple)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_KEYS, _TREES), min_size=1, max_size=4).map(tuple))
def test_generated_documents(entries: tuple[tuple[str, Any], ...]) -> None:
    text = _yaml(entries).lstrip("\n") + "\n"
    try:
        list(yaml.compose_all(text, Loader=loader._LOADER))
    except yaml.YAMLError:
        return
    _compare(text)
