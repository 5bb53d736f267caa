"""The former closure-based schema check, kept as a reference for differential tests.

:mod:`planpolicy.schemacheck` now generates Python source for a check; this
module is the implementation it replaced (nested closures over the same
keywords, same strict semantics). Tests assert that both give the same verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from planpolicy.schemacheck import _ANNOTATIONS, _KEYWORDS, UnsupportedSchema

__all__ = ["Check", "UnsupportedSchema", "compile_check"]

Check = Callable[[Any], bool]


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


def _always(value: Any) -> bool:
    return True


def _all(checks: list[Check]) -> Check:
    """All of ``checks`` (combined without a generator: checks run per value)."""
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    head, rest = checks[0], _all(checks[1:])
    return lambda v: head(v) and rest(v)


def _any(checks: list[Check]) -> Check:
    """Any of ``checks``; ``null`` first, without a call."""
    if any(check is _TYPES["null"] for check in checks):
        others = [check for check in checks if check is not _TYPES["null"]]
        other = _any(others) if others else None
        return (lambda v: v is None) if other is None else (lambda v: v is None or other(v))
    if len(checks) == 1:
        return checks[0]
    head, rest = checks[0], _any(checks[1:])
    return lambda v: head(v) or rest(v)


def _is_null_schema(node: Any) -> bool:
    return (
        isinstance(node, Mapping)
        and set(node) - _ANNOTATIONS == {"type"}
        and node["type"] == "null"
    )


class _Builder:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.cells: dict[str, list[Check]] = {}

    def ref(self, target: str) -> Check:
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix) :] not in self.defs:
            raise UnsupportedSchema(f"unsupported or unknown $ref `{target}`")
        name = target[len(prefix) :]
        cell = self.cells.get(name)
        if cell is None:
            cell = self.cells[name] = [_always]  # a placeholder while it is being built
            cell[0] = self.node(self.defs[name])
            return cell[0]
        if cell[0] is not _always:
            return cell[0]

        def recursive(value: Any) -> bool:  # built later: read when called
            return cell[0](value)

        return recursive

    def node(self, node: Any) -> Check:
        if node is True or node == {}:
            return _always
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
            checks.append(_any([_TYPES[name] for name in names]))
        if "const" in node:
            checks.append(_same(node["const"]))
        if "enum" in node:
            checks.append(_any([_same(option) for option in node["enum"]]))
        checks += self.string(node) + self.number(node) + self.array(node)
        if {"properties", "required", "additionalProperties", "patternProperties"} & set(node):
            checks.append(self.object(node))
        if "propertyNames" in node:
            names_ok = self.node(node["propertyNames"])
            if names_ok is not _always:
                checks.append(lambda v: not isinstance(v, dict) or all(map(names_ok, v)))
        if "anyOf" in node:
            options = node["anyOf"]
            checks.append(
                _any([_TYPES["null"] if _is_null_schema(o) else self.node(o) for o in options])
            )
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))
        return _all(checks)

    def string(self, node: Mapping[str, Any]) -> list[Check]:
        low, high = node.get("minLength"), node.get("maxLength")
        pattern = node.get("pattern")
        if low is None and high is None and pattern is None:
            return []
        lo, hi = low or 0, high if high is not None else float("inf")
        if pattern is None:
            return [lambda v: not isinstance(v, str) or lo <= len(v) <= hi]
        search = _regex(pattern).search
        return [lambda v: not isinstance(v, str) or (lo <= len(v) <= hi and search(v) is not None)]

    def number(self, node: Mapping[str, Any]) -> list[Check]:
        if "minimum" not in node and "maximum" not in node:
            return []
        low = node.get("minimum", float("-inf"))
        high = node.get("maximum", float("inf"))
        return [lambda v: not _is_number(v) or low <= v <= high]

    def array(self, node: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        low, high = node.get("minItems"), node.get("maxItems")
        if low is not None or high is not None:
            lo, hi = low or 0, high if high is not None else float("inf")
            out.append(lambda v: not isinstance(v, list) or lo <= len(v) <= hi)
        if "items" in node:
            item = self.node(node["items"])
            if item is not _always:
                out.append(lambda v: not isinstance(v, list) or all(map(item, v)))
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
            for name in required:
                if name not in value:
                    return False
            for key, item in value.items():
                if not isinstance(key, str):
                    return False
                known = properties.get(key)
                if known is not None:
                    if not known(item):
                        return False
                    continue
                matched = False
                for search, sub in patterns:
                    if search(key) is not None:
                        if not sub(item):
                            return False
                        matched = True
                if not matched and (other is None or not other(item)):
                    return False
            return True

        return check


def compile_check(schema: Mapping[str, Any]) -> Check:
    """Build the check of ``schema`` (its ``$defs`` resolve ``#/$defs/...`` references)."""
    return _Builder(schema).node(schema)
