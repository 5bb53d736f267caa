"""Generate the JSON Schemas in ``schemas/`` from the project's models.

The checked-in files are the editor-facing copy; :func:`check` reports drift
between them and the models (``planpolicy schema --check`` runs it in CI).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planpolicy.context import base_context_schema
from planpolicy.documents import DOCUMENT_MODELS
from planpolicy.plan import RevenuePlanV1

__all__ = [
    "SCHEMA_DIALECT",
    "check",
    "document_schema",
    "generate",
    "scenario_schema",
    "schema_file_for_kind",
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
        base_context_schema(), "context.v1.json", "planpolicy evaluation context v1"
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


def write(directory: Path) -> list[str]:
    """Write every schema into ``directory``; returns the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in generate().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def check(directory: Path) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    drift = []
    for name, text in generate().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            drift.append(name)
    return drift
