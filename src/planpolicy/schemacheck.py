"""A fast yes/no check of loaded data against a generated document schema.

It answers the question the document models answer in strict mode ("does
this document have the declared shape?") from the JSON Schema generated from
them, without building the models. Only the keywords that generation emits
are understood: building a check for a schema with any other keyword raises
:class:`UnsupportedSchema`, so a change to the models cannot silently make the
check weaker than they are.

Where a JSON Schema is looser than the models, the check follows the models:

- ``integer`` accepts an ``int`` only (not ``True``, not ``1.0``) and
  ``number`` an ``int`` or ``float`` (not a ``bool``);
- a ``pattern`` ending in ``$`` does not match before a trailing newline;
- an object with ``patternProperties`` and no ``additionalProperties`` (how a
  mapping with constrained keys is generated) refuses a key that matches no
  pattern.

A check only says *whether* the data is valid. The located diagnostics for
invalid data come from :mod:`planpolicy.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Check", "UnsupportedSchema", "compile_check"]

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"title", "description", "default", "$schema", "$id", "$defs"})
_KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "anyOf",
        "$ref",
    }
)


class UnsupportedSchema(ValueError):
    """The schema uses a keyword (or a form of one) the check does not implement."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _same(expected: Any) -> Check:
    return lambda v: type(v) is type(expected) and v == expected


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


class _Builder:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.built: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix) :] not in self.defs:
            raise UnsupportedSchema(f"unsupported or unknown $ref `{target}`")
        name = target[len(prefix) :]
        if name not in self.built:
            self.built[name] = lambda v: True  # placeholder while a recursive ref is built
            self.built[name] = self.node(self.defs[name])
        built = self.built

        def check(value: Any) -> bool:  # looked up per call: the entry may be recursive
            return built[name](value)

        return check

    def node(self, node: Any) -> Check:
        if node is True or node == {}:
            return lambda v: True
        if node is False:
            return lambda v: False
        if not isinstance(node, Mapping):
            raise UnsupportedSchema(f"a schema must be an object or a boolean, got {node!r}")
        unknown = set(node) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise UnsupportedSchema(f"unsupported keyword(s): {', '.join(sorted(unknown))}")
        checks: list[Check] = []
        if "type" in node:
            names = node["type"] if isinstance(node["type"], list) else [node["type"]]
            tests = [_TYPES[name] for name in names]
            checks.append(tests[0] if len(tests) == 1 else lambda v: any(t(v) for t in tests))
        if "const" in node:
            checks.append(_same(node["const"]))
        if "enum" in node:
            options = [_same(option) for option in node["enum"]]
            checks.append(lambda v: any(option(v) for option in options))
        checks += self.string(node) + self.number(node) + self.array(node)
        if {"properties", "required", "additionalProperties", "patternProperties"} & set(node):
            checks.append(self.object(node))
        if "propertyNames" in node:
            names_ok = self.node(node["propertyNames"])
            checks.append(lambda v: not isinstance(v, dict) or all(names_ok(k) for k in v))
        if "anyOf" in node:
            options = [self.node(option) for option in node["anyOf"]]
            checks.append(lambda v: any(option(v) for option in options))
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))
        return _all(checks)

    def string(self, node: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        low, high = node.get("minLength"), node.get("maxLength")
        if low is not None or high is not None:
            lo, hi = low or 0, high if high is not None else float("inf")
            out.append(lambda v: not isinstance(v, str) or lo <= len(v) <= hi)
        if "pattern" in node:
            search = _regex(node["pattern"]).search
            out.append(lambda v: not isinstance(v, str) or search(v) is not None)
        return out

    def number(self, node: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        if "minimum" in node:
            low = node["minimum"]
            out.append(lambda v: not _is_number(v) or v >= low)
        if "maximum" in node:
            high = node["maximum"]
            out.append(lambda v: not _is_number(v) or v <= high)
        return out

    def array(self, node: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        low, high = node.get("minItems"), node.get("maxItems")
        if low is not None or high is not None:
            lo, hi = low or 0, high if high is not None else float("inf")
            out.append(lambda v: not isinstance(v, list) or lo <= len(v) <= hi)
        if "items" in node:
            item = self.node(node["items"])
            out.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
        return out

    def object(self, node: Mapping[str, Any]) -> Check:
        properties = {name: self.node(sub) for name, sub in node.get("properties", {}).items()}
        required = tuple(node.get("required", ()))
        patterns = [
            (_regex(pattern).search, self.node(sub))
            for pattern, sub in node.get("patternProperties", {}).items()
        ]
        extra = node.get("additionalProperties", not patterns)
        other: Check | None = None if extra is False else self.node(extra)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            if any(name not in value for name in required):
                return False
            for key, item in value.items():
                if not isinstance(key, str):
                    return False
                known = properties.get(key)
                if known is not None:
                    if not known(item):
                        return False
                    continue
                matched = [sub for search, sub in patterns if search(key) is not None]
                if matched:
                    if not all(sub(item) for sub in matched):
                        return False
                elif other is None or not other(item):
                    return False
            return True

        return check


def compile_check(schema: Mapping[str, Any]) -> Check:
    """Build the check of ``schema`` (its ``$defs`` resolve ``#/$defs/...`` references)."""
    return _Builder(schema).node(schema)
