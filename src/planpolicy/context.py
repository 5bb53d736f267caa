"""The declared evaluation context: what CEL expressions may reference.

The base context is declared as pydantic models in
:mod:`planpolicy.context_models` (its JSON Schema is generated into
``schemas/context.v1.json`` and into the package's document shapes); policy
authors extend it with ``ContextExtension`` documents. The compiler turns the
merged schema into CEL types for the type checker, and callers build
activations from plain dicts.
"""

from __future__ import annotations

import copy
from typing import Any

from planpolicy.docrecords import shapes

__all__ = ["base_context_schema", "merge_extension", "normalize_for_types"]


def base_context_schema() -> dict[str, Any]:
    """The JSON Schema of the base evaluation context (a fresh copy)."""
    return copy.deepcopy(shapes()["context"])


def merge_extension(
    schema: dict[str, Any], properties: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Merge a ContextExtension's per-root fragments into a context schema (copy)."""
    merged = copy.deepcopy(schema)
    defs = merged.setdefault("$defs", {})
    top = merged.setdefault("properties", {})
    for root, fragment in properties.items():
        target = top.get(root)
        if isinstance(target, dict) and "$ref" in target:
            ref_name = str(target["$ref"]).rsplit("/", 1)[-1]
            target = defs.get(ref_name)
        if isinstance(target, dict):
            target.setdefault("properties", {}).update(
                copy.deepcopy(fragment.get("properties", {}))
            )
        else:
            top[root] = copy.deepcopy(fragment)
    return merged


def normalize_for_types(node: Any) -> Any:
    """Collapse pydantic's ``anyOf: [X, {type: null}]`` into ``X`` (nullable) for the type mapper."""
    if isinstance(node, list):
        return [normalize_for_types(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalize_for_types(value) for key, value in node.items()}
    options = out.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(non_null) == 1 and isinstance(non_null[0], dict):
            merged = {k: v for k, v in out.items() if k != "anyOf"}
            merged.update(non_null[0])
            return merged
    return out
