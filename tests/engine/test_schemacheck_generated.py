"""The generated schema check gives the verdicts of the closure check it replaced.

:mod:`planpolicy.schemacheck` writes Python source per schema; the former
implementation (:mod:`tests.engine.schemacheck_reference`) builds nested
closures over the same keywords. Both must agree on every document kind's
schema over the bundled documents and generated variants of them, and on
generated schemas (every supported keyword, nested) over generated values.
The agreement with the pydantic models is in ``test_docrecords.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.engine import schemacheck_reference as reference
from tests.engine.test_docrecords import DOCUMENTS, ODD_VALUES, variants

from planpolicy.docrecords import document_kinds, kind_schema
from planpolicy.schemacheck import UnsupportedSchema, check_source, compile_check

GENERATED = {kind: compile_check(kind_schema(kind)) for kind in document_kinds()}
REFERENCE = {kind: reference.compile_check(kind_schema(kind)) for kind in document_kinds()}


@pytest.mark.parametrize("data", DOCUMENTS, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_bundled_documents_pass_both(data: dict[str, Any]) -> None:
    assert GENERATED[data["kind"]](data) is True
    assert REFERENCE[data["kind"]](data) is True


@settings(max_examples=1000, deadline=None)
@given(variants(), st.sampled_from(document_kinds()))
def test_variants_get_the_same_verdict(variant: tuple[str, dict[str, Any]], other: str) -> None:
    kind, data = variant
    for checked in (kind, other):  # against its own kind's schema and another one
        assert GENERATED[checked](data) == REFERENCE[checked](data)


# --- generated schemas ------------------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "id", "x-y", "7"])
_PATTERNS = st.sampled_from(["^[a-z]+$", "^[A-Z][a-z]*$", "b", "^x\\$", "^\\d{1,3}$"])
_TYPES = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
_CONSTS = st.sampled_from([None, True, False, 0, 1, 2.5, "a", "B", "", [1], {"a": 1}])


def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if draw(st.booleans()):
        types = draw(st.lists(_TYPES, min_size=1, max_size=3, unique=True))
        node["type"] = types[0] if len(types) == 1 and draw(st.booleans()) else types
    if draw(st.integers(0, 5)) == 0:
        node["const"] = draw(_CONSTS)
    if draw(st.integers(0, 4)) == 0:
        node["enum"] = draw(st.lists(_CONSTS, min_size=1, max_size=4))
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        if draw(st.integers(0, 3)) == 0:
            node[low] = draw(st.integers(0, 3))
        if draw(st.integers(0, 3)) == 0:
            node[high] = draw(st.integers(0, 4))
    if draw(st.integers(0, 3)) == 0:
        node["minimum"] = draw(st.sampled_from([0, 1, -1.5, 2.5]))
    if draw(st.integers(0, 3)) == 0:
        node["maximum"] = draw(st.sampled_from([0, 3, 10.5]))
    if draw(st.integers(0, 3)) == 0:
        node["pattern"] = draw(_PATTERNS)
    if draw(st.integers(0, 5)) == 0:
        node["description"] = "annotation"
    return node


@st.composite
def schemas(draw: st.DrawFn, depth: int = 3) -> Any:
    """A schema of the supported keywords, nested up to ``depth`` levels."""
    if draw(st.integers(0, 12)) == 0:
        return draw(st.sampled_from([True, False, {}]))
    node = _leaf(draw)
    if depth == 0:
        return node
    inner = schemas(depth - 1)
    if draw(st.integers(0, 2)) == 0:
        node["items"] = draw(inner)
    if draw(st.integers(0, 2)) == 0:
        node["properties"] = draw(st.dictionaries(_NAMES, inner, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        node["required"] = draw(st.lists(_NAMES, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        node["patternProperties"] = draw(st.dictionaries(_PATTERNS, inner, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        node["additionalProperties"] = draw(st.one_of(st.booleans(), inner))
    if draw(st.integers(0, 4)) == 0:
        node["propertyNames"] = draw(inner)
    if draw(st.integers(0, 3)) == 0:
        node["anyOf"] = draw(
            st.lists(st.one_of(st.just({"type": "null"}), inner), min_size=1, max_size=3)
        )
    if draw(st.integers(0, 4)) == 0:
        node["$ref"] = "#/$defs/Self"
    return node


_VALUES = st.recursive(
    st.one_of(ODD_VALUES, st.sampled_from(["a", "abc", "B", "Bcd", "7", "x$", "xy"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(_NAMES, st.sampled_from(["abc", "Z", "12"])), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas(), schemas(depth=2), st.lists(_VALUES, min_size=1, max_size=6))
def test_generated_schemas_get_the_same_verdicts(
    schema: Any, definition: Any, values: list[Any]
) -> None:
    if not isinstance(schema, dict):
        return  # a boolean schema has no `$defs`: neither builds one at the root
    schema = {**schema, "$defs": {"Self": definition}}
    try:
        expected = reference.compile_check(schema)
    except (IndexError, KeyError):  # an empty enum / anyOf, refused by the reference only
        return
    except reference.UnsupportedSchema:
        with pytest.raises(UnsupportedSchema):
            compile_check(schema)
        return
    check = compile_check(schema)
    for value in values:
        try:
            verdict = expected(value)
        except RecursionError:  # `Self` refers to itself before any keyword: both recurse
            with pytest.raises(RecursionError):
                check(value)
            continue
        assert check(value) == verdict, (check_source(schema), value)


def test_the_source_can_be_read() -> None:
    source = check_source({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert "def _check(v: Any) -> bool:" in source
    assert "k == 'a'" in source


def test_the_packaged_checks_are_made_from_the_shapes_file() -> None:
    from planpolicy import docrecords, document_checks, schemagen

    assert docrecords._shapes_file()[1] == document_checks.SOURCE_DIGEST
    for kind in document_kinds():
        assert docrecords._check(kind) is document_checks.CHECKS[kind]
    text = schemagen.CHECKS_FILE.read_text(encoding="utf-8")
    assert text == schemagen._checks_text(schemagen.SHAPES_FILE.read_text(encoding="utf-8"))


def test_checks_are_compiled_when_the_packaged_ones_are_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from planpolicy import docrecords, document_checks

    monkeypatch.setattr(document_checks, "SOURCE_DIGEST", "sha256:stale")
    docrecords._check.cache_clear()
    try:
        check = docrecords._check("PlanType")
        assert check is not document_checks.CHECKS["PlanType"]
        assert all(check(d) for d in DOCUMENTS if d["kind"] == "PlanType")
    finally:
        docrecords._check.cache_clear()
