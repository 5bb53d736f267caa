"""Documents are read through the generated shapes exactly as the models would read them.

``read_document`` checks a document against its kind's generated schema and
builds records with the models' attributes, without building the pydantic
models. Here the models are the reference: over the bundled documents and
many generated variants of them (values of the wrong type, nulls, missing and
unknown keys, strings with a trailing newline, floats in integer fields, ...),
the check must accept exactly what the models accept in strict mode, and the
records must hold exactly what the models hold.
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from tests.engine.conftest import REPO, PolicyTree, at

from planpolicy import schemagen
from planpolicy.docrecords import Record, read_document
from planpolicy.documents import DOCUMENT_MODELS
from planpolicy.schemacheck import UnsupportedSchema, compile_check

EXTENSION = {
    "apiVersion": "planpolicy/v1",
    "kind": "ContextExtension",
    "metadata": {"name": "crm", "version": 1, "description": "CRM fields"},
    "spec": {"properties": {"account": {"properties": {"segment": {"type": "string"}}}}},
}


def _bundled() -> list[dict[str, Any]]:
    docs = []
    for path in sorted([*REPO.glob("policies/*.yaml"), *REPO.glob("plan_types/*.yaml")]):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [*docs, EXTENSION]


DOCUMENTS = _bundled()


def _model_reads(kind: str, data: Any) -> BaseModel | None:
    try:
        return DOCUMENT_MODELS[kind].model_validate(data, strict=True, by_alias=True, by_name=False)
    except ValidationError:
        return None


def _same_as_model(kind: str, data: Any) -> None:
    model = _model_reads(kind, data)
    record = read_document(kind, data)
    assert (record is None) == (model is None), json.dumps(data, default=str)[:2000]
    if record is not None and model is not None:
        dumped = model.model_dump()
        assert record.as_dict() == dumped
        # same value types too (an int in a float field becomes a float)
        assert json.dumps(record.as_dict(), sort_keys=True) == json.dumps(dumped, sort_keys=True)


def test_every_kind_has_bundled_examples() -> None:
    assert {d["kind"] for d in DOCUMENTS} == set(DOCUMENT_MODELS)


@pytest.mark.parametrize("data", DOCUMENTS, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_bundled_documents_read_as_the_models_read_them(data: dict[str, Any]) -> None:
    record = read_document(data["kind"], data)
    assert record is not None
    _same_as_model(data["kind"], data)


def test_records_have_the_models_defaults_attributes_and_nesting() -> None:
    plan_type = next(d for d in DOCUMENTS if d["kind"] == "PlanType")
    record = read_document("PlanType", plan_type)
    assert record is not None
    step = record.spec.steps[0]
    assert isinstance(step, Record) and step.model_name == "StepSpec"
    assert isinstance(step.retry.backoff_multiplier, float)
    assert record.spec.lifecycle == plan_type["spec"].get("lifecycle", "default")
    lifecycle = read_document("Lifecycle", next(d for d in DOCUMENTS if d["kind"] == "Lifecycle"))
    assert lifecycle is not None
    transition = lifecycle.spec.transitions[0]
    assert transition.source and transition.dest  # YAML keys `from` / `to`


def test_records_are_read_only_comparable_and_picklable() -> None:
    plan_type = next(d for d in DOCUMENTS if d["kind"] == "PlanType")
    record = read_document("PlanType", plan_type)
    assert record is not None
    with pytest.raises(AttributeError):
        record.spec = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del record.metadata
    clone = pickle.loads(pickle.dumps(record))
    assert clone == record and clone is not record
    assert repr(record).startswith("PlanType(api_version='planpolicy/v1'")
    again = read_document("PlanType", plan_type)
    assert again is not None and again == record
    # a default is a fresh value per record, never shared
    assert "labels" not in plan_type["metadata"]
    assert again.metadata.labels == {} and again.metadata.labels is not record.metadata.labels


# --- generated variants --------------------------------------------------------

ODD_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        -1,
        2,
        365,
        731,
        10**7,
        1.0,
        1.5,
        float("inf"),
        "",
        "x",
        "ACTIVE",
        "PLAN_X",
        "pause",
        "gate",
        "any",
        "max",
        "tenant_id",
        "abc\n",
        "ABC\n",
        "snake_case_name",
        "a" * 2001,
        "A" * 4001,
        [],
        ["ACTIVE"],
        [1],
        {},
        {"a": 1},
        {"expr": "true", "id": "x"},
        {"name": "LOW"},
        {"type": "string"},
    ]
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def variants(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(kind of the original document, a changed copy of it)."""
    data = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    kind = data["kind"]
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        action = draw(st.sampled_from(["replace", "delete", "add", "rename"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(ODD_VALUES))
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from(["colour", "max_duration_days", "humanTouch", "7", "when"]))
            parent[key] = copy.deepcopy(draw(ODD_VALUES))
        elif action == "add" and isinstance(parent, list):
            parent.append(copy.deepcopy(draw(ODD_VALUES)))
        elif action == "rename" and isinstance(parent, dict) and isinstance(path[-1], str):
            # the python attribute name instead of the YAML key, or a stray case change
            key = path[-1]
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
            parent[snake if snake != key else key.upper()] = parent.pop(key)
    return kind, data


@settings(max_examples=600, deadline=None)
@given(variants())
def test_generated_variants_are_accepted_exactly_when_the_models_accept_them(
    variant: tuple[str, dict[str, Any]],
) -> None:
    _same_as_model(*variant)


# --- the check itself ----------------------------------------------------------


def test_integers_numbers_and_booleans_are_strict() -> None:
    check = compile_check({"type": "integer", "minimum": 1})
    assert check(1) and check(10**30)
    assert not check(True) and not check(1.0) and not check(0) and not check("1")
    number = compile_check({"type": "number", "maximum": 10.0})
    assert number(3) and number(2.5) and not number(False) and not number(11)


def test_a_pattern_ending_in_dollar_does_not_match_before_a_trailing_newline() -> None:
    check = compile_check({"type": "string", "pattern": "^[A-Z]+$"})
    assert check("ABC") and not check("ABC\n") and not check("abc")


def test_pattern_keys_refuse_a_key_that_matches_no_pattern() -> None:
    check = compile_check(
        {"type": "object", "patternProperties": {"^[a-z]+$": {"type": "integer"}}}
    )
    assert check({"ab": 1}) and not check({"ab": "x"}) and not check({"AB": 1})
    assert not check({1: 1})


def test_unknown_keywords_and_references_are_refused_when_building() -> None:
    with pytest.raises(UnsupportedSchema, match="format"):
        compile_check({"type": "string", "format": "email"})
    with pytest.raises(UnsupportedSchema, match="allOf"):
        compile_check({"allOf": [{"type": "string"}]})
    with pytest.raises(UnsupportedSchema, match=r"\$ref"):
        compile_check({"$ref": "https://example.com/other.json"})


def test_recursive_references_are_checked() -> None:
    tree = compile_check(
        {
            "$ref": "#/$defs/Node",
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                    "additionalProperties": False,
                }
            },
        }
    )
    assert tree({"kids": [{"kids": []}, {}]})
    assert not tree({"kids": [{"kids": [{"x": 1}]}]})


# --- the generated file and the pipeline ---------------------------------------


def test_shapes_file_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "document_shapes.json"
    stale.write_text(schemagen.SHAPES_FILE.read_text().replace('"maxDurationDays"', '"maxDays"'))
    monkeypatch.setattr(schemagen, "SHAPES_FILE", stale)
    assert schemagen.check(REPO / "schemas") == [str(stale)]
    assert "document_shapes.json" in schemagen.write(tmp_path / "schemas")
    assert schemagen.check(REPO / "schemas") == []
    assert stale.read_text() == (REPO / "src/planpolicy/document_shapes.json").read_text()


def test_a_python_attribute_name_is_an_unknown_field(tree: PolicyTree) -> None:
    rd = "plan_types/renewal_defense.yaml"
    tree.replace(rd, "maxDurationDays:", "max_duration_days:")
    diags = tree.lint()
    assert at(diags, "PP202") == [(tree.line_of(rd, "max_duration_days"), 3)]
    hint = next(d.hint for d in diags if d.code == "PP202")
    assert hint == "did you mean `maxDurationDays`?"


def test_what_only_the_model_rejects_is_still_located(tree: PolicyTree) -> None:
    rd = "plan_types/renewal_defense.yaml"
    tree.replace(rd, "maxDurationDays: 120", "maxDurationDays: 120.0")
    tree.replace(rd, "  version:", "  labels: {'bad key': x}\n  version:")
    diags = tree.lint()
    located = sorted(at(diags, "PP201"))
    assert (tree.line_of(rd, "maxDurationDays: 120.0"), tree.col_of(rd, "120.0")) in located
    assert any(line == tree.line_of(rd, "bad key") for line, _ in located)
    assert not any(d.code == "PP201" and "shape check" in d.message for d in diags)


def test_linting_never_builds_the_models() -> None:
    code = (
        "import sys\n"
        "from planpolicy.cli import main\n"
        f"rc = main(['lint', {str(REPO / 'policies')!r}, {str(REPO / 'plan_types')!r}])\n"
        "assert rc == 0, rc\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'jsonschema')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
