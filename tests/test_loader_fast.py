"""The loader's short cuts give exactly what the plain ways give.

* the resolver short cut and memo (:class:`planpolicy.loader._Loader`) tag
  every node as PyYAML's own resolver does;
* a document without aliases, built in one counting pass, has the same data,
  marks and diagnostics as when it is measured first;
* :class:`~planpolicy.model.LazyRuleRef` behaves like the :class:`RuleRef`
  it stands for.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planpolicy import loader
from planpolicy.diagnostics import DiagnosticSink, Location
from planpolicy.loader import LoadLimits, load_text
from planpolicy.model import LazyRuleRef, RuleRef

TRICKY = [
    "0o17",
    "017",
    "1_000",
    "0b1010",
    "0x1F",
    "0x_1F",
    "-0x1F",
    "+1.5e3",
    "1.5e3",
    "1e3",
    "6.8523015e+5",
    "685.230_15e+03",
    "190:20:30.15",
    "1:20",
    "-1:20",
    "1:60",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    ".",
    "yes",
    "Yes",
    "YES",
    "yEs",
    "no",
    "on",
    "Off",
    "y",
    "n",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    "",
    "2025-01-01",
    "2025-1-1",
    "2025-01-01T10:00:00Z",
    "2025-01-01 10:00:00.5 +01:00",
    "<<",
    "=",
    "0",
    "-0",
    "+0",
    "00",
    "08",
    "1,000",
    "12abc",
    "abc",
    "NaN",
    "inf",
    "renewal_defense",
    "a" * 100,
    "y" + "e" * 80,
]


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, SequenceNode):
        for item in node.value:
            yield from _nodes(item)
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield from _nodes(key)
            yield from _nodes(value)


def _tags(text: str, loader_class: type) -> list[tuple[str, str, object]]:
    result = []
    for root in yaml.compose_all(text, Loader=loader_class):
        for node in _nodes(root):
            result.append(
                (
                    type(node).__name__,
                    node.tag,
                    node.value if isinstance(node, ScalarNode) else None,
                )
            )
    return result


def _document(values: list[str]) -> str:
    lines = ["plain:"]
    lines += [f"  - {value}" if value else "  -" for value in values]
    lines.append("quoted:")
    lines += [f"  - '{value}'" for value in values]
    lines.append("keys:")
    lines += [f"  {value}: {value}" for value in values if value and value not in ("<<", "=")]
    lines.append("flow: [" + ", ".join(v for v in values if v and v[0] not in "&*!|>'\"%@`") + "]")
    lines.append("tagged: !!str 12")
    lines.append("nonspecific: ! 12")
    return "\n".join(lines) + "\n"


def test_plain_scalar_short_cut_tags_like_pyyaml() -> None:
    text = _document(TRICKY)
    expected = _tags(text, yaml.SafeLoader)  # PyYAML's pure-Python resolver
    assert _tags(text, loader._LOADER) == expected
    assert _tags(text, loader._LOADER) == expected  # second time from the memo
    assert _tags(text, yaml.CSafeLoader) == expected


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_TAG_MEMO", {})
    text = "".join(f"- {i}\n" for i in range(loader._TAG_MEMO_ENTRIES + 100))
    text += "- " + "1" * 200 + "\n"
    tags = _tags(text, loader._LOADER)
    assert tags == _tags(text, yaml.SafeLoader)
    assert len(loader._TAG_MEMO) == loader._TAG_MEMO_ENTRIES
    assert "1" * 200 not in loader._TAG_MEMO


def test_path_resolvers_disable_the_short_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    class WithPaths(loader._Loader):  # type: ignore[misc]
        pass

    monkeypatch.setattr(WithPaths, "yaml_path_resolvers", {(("a",), str): "!custom"})
    probe = WithPaths("x: 1\n")
    assert probe.resolve.__func__ is yaml.resolver.BaseResolver.resolve  # type: ignore[attr-defined]
    probe.dispose()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789_.:+-eExXoObBnNyYtTfF~abl ", min_size=1, max_size=12))
def test_any_plain_scalar_tags_like_pyyaml(value: str) -> None:
    text = f"k: {value}\n"
    try:
        expected = _tags(text, yaml.SafeLoader)
    except yaml.YAMLError:
        return
    assert _tags(text, loader._LOADER) == expected


# -- one counting pass ------------------------------------------------------------

SAMPLES = [
    "a: 1\nb: [x, y, {c: d}]\nc: 'q'\nd: !!int '12'\n",
    "a: 1\na: [1, 2]\n",  # duplicate key, collection value
    "a: 1\na: 2\n",
    "[1, 2]: x\nb: 1\n",  # collection key
    "1: x\n? {a: b}\n: [c]\n",
    "s: !!set {a, b}\nt: 1\n",
    "o: !!omap [a: 1]\n",
    "v: !!binary aGk=\n",
    "n: !!int abc\nm: !!float x\n",
    "deep: " + "[" * 70 + "]" * 70 + "\n",
    "ok: " + "[" * 63 + "]" * 63 + "\n",
    "edge: " + "[" * 64 + "]" * 64 + "\n",
    "dup: 1\ndup: " + "[" * 70 + "]" * 70 + "\n",
    "wide: [" + ", ".join(str(i) for i in range(300)) + "]\n",
    "---\na: 1\n---\nb: [1, 2]\n---\n",
    "- a\n- b: c\n  d: [e]\n",
    "plain\n",
    "",
]


def _snapshot(text: str, limits: LoadLimits) -> tuple[object, ...]:
    sink = DiagnosticSink()
    loaded = load_text(text, "policy.yaml", sink, limits=limits)
    documents = None
    if loaded is not None:
        documents = [(d.index, d.data, dict(d.marks), dict(d.key_marks)) for d in loaded.documents]
    return documents, list(sink)


def _measuring_first(*args: object) -> object:
    raise loader._CheckNeeded


@pytest.mark.parametrize("limits", [LoadLimits(), LoadLimits(max_nodes=40, max_depth=8)])
@pytest.mark.parametrize("text", SAMPLES)
def test_counting_pass_matches_measuring_first(
    text: str, limits: LoadLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = _snapshot(text, limits)
    monkeypatch.setattr(loader._DocumentBuilder, "build_counted", _measuring_first)
    measured = _snapshot(text, limits)
    assert counted == measured


def test_counting_pass_is_taken_without_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = loader._DocumentBuilder.check

    def check(self: loader._DocumentBuilder, root: Node) -> None:
        calls.append(1)
        original(self, root)

    monkeypatch.setattr(loader._DocumentBuilder, "check", check)
    load_text("a: [1, 2]\n", "p.yaml", DiagnosticSink())
    assert calls == []
    load_text("a: &x [1, 2]\nb: *x\n", "p.yaml", DiagnosticSink())
    assert calls == [1]
    load_text("a: " + "[" * 70 + "]" * 70 + "\n", "p.yaml", DiagnosticSink())
    assert calls == [1, 1]  # too deep: measured after all, and refused the usual way


# -- lazy rule locations -------------------------------------------------------------


def test_lazy_rule_ref_finds_its_location_once() -> None:
    found: list[int] = []

    def locate() -> Location:
        found.append(1)
        return Location("p.yaml", 3, 4)

    ref = LazyRuleRef("PlanType", "X", 2, "rule", locate)
    assert found == []
    assert ref.location == Location("p.yaml", 3, 4)
    assert ref.location == Location("p.yaml", 3, 4)
    assert found == [1]
    assert ref.as_dict() == RuleRef("PlanType", "X", 2, "rule", Location("p.yaml", 3, 4)).as_dict()
    copy = pickle.loads(pickle.dumps(ref))
    assert type(copy) is RuleRef
    assert copy == RuleRef("PlanType", "X", 2, "rule", Location("p.yaml", 3, 4))


def test_compiled_refs_point_at_their_rules(tmp_path: Path) -> None:
    from planpolicy.compiler import compile_bundle

    root = Path(__file__).resolve().parents[1]
    result = compile_bundle([root / "policies", root / "plan_types"])
    assert result.ok
    ptype = next(iter(result.plan_types.values()))
    for cond in ptype.eligibility:
        loc = cond.ref.location
        assert loc is not None
        line = Path(loc.file).read_text().splitlines()[loc.line - 1]
        assert line[loc.column - 1 :].startswith(
            ("expr", cond.expr.source[:10], "|", ">", '"', "'")
        )


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "7",
        "12",
        "007",
        "00",
        "1_000",
        "0x1F",
        "1:20",
        "\u00b2",
        "\u0661\u0662",
        "\uff11\uff12",
        "-3",
        "+4",
    ],
)
def test_integers_read_inline_as_parse_int_reads_them(value: str) -> None:
    sink = DiagnosticSink()
    loaded = load_text(f"n: !!int {value}\n", "p.yaml", sink)
    assert loaded is not None
    expected = loader._parse_int(value)
    if expected is None:
        assert loaded.documents[0].data == {}
        assert [d.code for d in sink] == ["PP110"]
    else:
        assert loaded.documents[0].data == {"n": expected}
        assert list(sink) == []
