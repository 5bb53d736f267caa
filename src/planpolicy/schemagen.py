"""Generate the JSON Schemas in ``schemas/`` from the project's models.

The checked-in files are the editor-facing copy; :func:`check` reports drift
between them and the models (``planpolicy schema --check`` runs it in CI).

The same run generates the package's ``document_shapes.json``
(:data:`SHAPES_FILE`): the document kinds' schemas, a field table per document
model and the base evaluation context. The compiler reads policy documents
through it (:mod:`planpolicy.docrecords`), so loading policies never needs to
build the pydantic models; :func:`check` reports its drift too.
"""

from __future__ import annotations

import json
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planpolicy.context_models import context_schema
from planpolicy.docrecords import SHAPES_FILE, shapes_digest
from planpolicy.documents import DOCUMENT_MODELS
from planpolicy.plan import RevenuePlanV1
from planpolicy.schemacheck import module_source

__all__ = [
    "SCHEMA_DIALECT",
    "SHAPES_FILE",
    "check",
    "document_schema",
    "generate",
    "scenario_schema",
    "schema_file_for_kind",
    "shapes",
    "write",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ID_BASE = "https://planpolicy.dev/schemas/"


def schema_file_for_kind(kind: str) -> str:
    """``PlanType`` -> ``plan_type.v1.json``."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
    return f"{snake}.v1.json"


def _finish(schema: dict[str, Any], filename: str, title: str) -> dict[str, Any]:
    out: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "$id": _ID_BASE + filename}
    out.update(schema)
    out["title"] = title
    return out


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, mode="validation")


@cache
def _generated() -> dict[str, str]:
    # Imported here: validating policy documents must not load every file format.
    from planpolicy.scenario import ScenarioFile
    from planpolicy.testing.spec import PolicyTestFile

    files: dict[str, dict[str, Any]] = {}
    for kind, model in DOCUMENT_MODELS.items():
        name = schema_file_for_kind(kind)
        files[name] = _finish(_model_schema(model), name, f"planpolicy {kind} document v1")
    files["revenue_plan.v1.json"] = _finish(
        _model_schema(RevenuePlanV1), "revenue_plan.v1.json", "RevenuePlanV1 record"
    )
    files["policy_test.v1.json"] = _finish(
        _model_schema(PolicyTestFile), "policy_test.v1.json", "planpolicy policy test file v1"
    )
    files["scenario.v1.json"] = _finish(
        _model_schema(ScenarioFile), "scenario.v1.json", "planpolicy simulation scenario v1"
    )
    files["context.v1.json"] = _finish(
        context_schema(), "context.v1.json", "planpolicy evaluation context v1"
    )
    return {
        name: json.dumps(schema, indent=2, sort_keys=False) + "\n" for name, schema in files.items()
    }


def generate() -> dict[str, str]:
    """File name -> JSON text of every schema."""
    return dict(_generated())


def document_schema(kind: str) -> dict[str, Any]:
    """The parsed schema of a document kind (``KeyError`` for unknown kinds)."""
    return dict(json.loads(_generated()[schema_file_for_kind(kind)]))


def scenario_schema() -> dict[str, Any]:
    """The parsed schema of simulation scenario files."""
    return dict(json.loads(_generated()["scenario.v1.json"]))


# --- the package's document shapes -------------------------------------------


def _shape(annotation: Any) -> Any:
    """How a field's value is read: ``"value"`` as loaded, ``"float"``, or nested records.

    ``{"model": NAME}`` is a record of that model, ``{"list": S}`` a list and
    ``{"dict": S}`` a mapping of values of shape ``S``; ``None`` passes through.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _shape(options[0]) if len(options) == 1 else "value"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"model": annotation.__name__}
    if annotation is float:
        return "float"
    if origin in (list, dict):
        inner = _shape(typing.get_args(annotation)[-1])
        return "value" if inner == "value" else {origin.__name__: inner}
    return "value"


def _default(field: Any) -> dict[str, Any]:
    if field.default_factory is not None:
        made = field.default_factory()
        if isinstance(made, BaseModel):
            made = made.model_dump(mode="json", by_alias=True)
        return {"default": made}
    if field.is_required():
        return {}
    return {"default": field.default}


def _models() -> dict[str, type[BaseModel]]:
    """Every model reachable from the document models, by class name."""
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for field in model.model_fields.values():
            stack = [field.annotation]
            while stack:
                annotation = stack.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    visit(annotation)
                stack.extend(typing.get_args(annotation))

    for model in DOCUMENT_MODELS.values():
        visit(model)
    return found


def shapes() -> dict[str, Any]:
    """The content of :data:`SHAPES_FILE`: kinds' schemas, field tables, base context."""
    models = {
        name: {
            "fields": [
                {"name": fname, "alias": field.alias or fname, "shape": _shape(field.annotation)}
                | _default(field)
                for fname, field in model.model_fields.items()
            ]
        }
        for name, model in sorted(_models().items())
    }
    return {
        "comment": "Generated by `planpolicy schema --write` from planpolicy.documents; "
        "do not edit.",
        "kinds": {kind: document_schema(kind) for kind in DOCUMENT_MODELS},
        "models": models,
        "context": context_schema(),
    }


def _shapes_text() -> str:
    return json.dumps(shapes(), indent=1) + "\n"


CHECKS_FILE = Path(__file__).with_name("document_checks.py")
"""The generated document checks (:func:`planpolicy.schemacheck.module_source`)."""

_CHECKS_HEADER = """The document kinds' schema checks, made from document_shapes.json.

Generated by `planpolicy schema --write` (planpolicy.schemacheck.module_source);
do not edit. planpolicy.docrecords uses them only while SOURCE_DIGEST matches
the shapes file, and compiles the checks from it otherwise.
"""


def _checks_text(shapes_text: str) -> str:
    kinds = json.loads(shapes_text)["kinds"]
    return module_source(kinds, shapes_digest(shapes_text), _CHECKS_HEADER)


def _targets(directory: Path) -> list[tuple[Path, str, str]]:
    out = [(directory / name, name, text) for name, text in generate().items()]
    shapes_text = _shapes_text()
    out.append((SHAPES_FILE, str(SHAPES_FILE.name), shapes_text))
    out.append((CHECKS_FILE, str(CHECKS_FILE.name), _checks_text(shapes_text)))
    from planpolicy.cel import syntax_tables_text
    from planpolicy.celsyntax import TABLES_FILE

    out.append((TABLES_FILE, str(TABLES_FILE.name), syntax_tables_text()))
    return out


def write(directory: Path) -> list[str]:
    """Write every schema into ``directory`` and the package's generated files.

    Returns the names of the files that changed. Besides the shapes, the
    package ships CEL parse tables (:func:`planpolicy.cel.write_packaged_tables`),
    rebuilt only when the grammar or lark changed.
    """
    from planpolicy.cel import PACKAGED_TABLES, write_packaged_tables

    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for path, name, text in _targets(directory):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    if write_packaged_tables():
        changed.append(PACKAGED_TABLES.name)
    return changed


def check(directory: Path) -> list[str]:
    """Paths of generated files that are missing or differ from the models."""
    drift = []
    for path, _name, text in _targets(directory):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            drift.append(str(path))
    return drift
