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

A check is Python source generated from the schema and compiled once: one
function per ``$defs`` entry, per object and per array, each keyword's test
written out inline (:func:`check_source` shows it).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Check", "UnsupportedSchema", "check_source", "compile_check", "module_source"]

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


_TYPE_TESTS: dict[str, str] = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "integer": "(isinstance({v}, int) and not isinstance({v}, bool))",
    "number": "(isinstance({v}, (int, float)) and not isinstance({v}, bool))",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
}
_OBJECT_KEYWORDS = frozenset(
    {"properties", "required", "additionalProperties", "patternProperties"}
)


def _regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _is_null_schema(node: Any) -> bool:
    return (
        isinstance(node, Mapping)
        and set(node) - _ANNOTATIONS == {"type"}
        and node["type"] == "null"
    )


def _any(tests: list[str]) -> str:
    if not tests:
        return "False"
    if "True" in tests:
        return "True"
    return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"


def _all(tests: list[str]) -> str:
    tests = [test for test in tests if test != "True"]
    if not tests:
        return "True"
    return tests[0] if len(tests) == 1 else "(" + " and ".join(tests) + ")"


class _Generator:
    """Writes the functions of one schema's check (see :func:`check_source`)."""

    def __init__(self, root: Mapping[str, Any], prefix: str) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.prefix = prefix
        self.constants: list[str] = []
        self.functions: list[str] = []
        self.refs: dict[str, str] = {}
        self._ids = itertools.count()

    def name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}{next(self._ids)}"

    def value(self, value: Any) -> str:
        """``value`` in the source: a literal for plain text and integers, else a constant."""
        if value is None or type(value) in (bool, int, str):
            return repr(value)
        return self.constant(_source_of(value))

    def constant(self, source: str) -> str:
        name = self.name("k")
        self.constants.append(f"{name} = {source}")
        return name

    def function(self, kind: str, lines: list[str], comment: str = "") -> str:
        name = self.name(kind)
        self.functions.append("\n".join([f"def {name}(v: Any) -> bool:{comment}", *lines]))
        return name

    def ref(self, target: str) -> str:
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix) :] not in self.defs:
            raise UnsupportedSchema(f"unsupported or unknown $ref `{target}`")
        name = target[len(prefix) :]
        function = self.refs.get(name)
        if function is None:
            function = self.refs[name] = self.name("d")  # named before its body: recursion
            body = self.test(self.defs[name], "v")
            self.functions.append(f"def {function}(v: Any) -> bool:  # {name}\n    return {body}")
        return function

    def test(self, node: Any, v: str) -> str:
        """A Python expression that is true when the value named ``v`` is valid."""
        if node is True or node == {}:
            return "True"
        if node is False:
            return "False"
        if not isinstance(node, Mapping):
            raise UnsupportedSchema(f"a schema must be an object or a boolean, got {node!r}")
        unknown = set(node) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise UnsupportedSchema(f"unsupported keyword(s): {', '.join(sorted(unknown))}")
        tests: list[str] = []
        known = None  # the one type the value is known to have past the type test
        if "type" in node:
            names = node["type"] if isinstance(node["type"], list) else [node["type"]]
            unsupported = [name for name in names if name not in _TYPE_TESTS]
            if unsupported:
                raise UnsupportedSchema(f"unsupported type(s): {unsupported!r}")
            tests.append(_any([_TYPE_TESTS[name].format(v=v) for name in names]))
            known = names[0] if len(names) == 1 else None
        if "const" in node:
            tests.append(self.same(node["const"], v))
        if "enum" in node:
            tests.append(self.enum(node["enum"], v))
        tests += self.string(node, v, known) + self.number(node, v, known)
        tests += self.array(node, v, known)
        if _OBJECT_KEYWORDS & set(node):
            tests.append(f"{self.object(node, known == 'object')}({v})")
        if "propertyNames" in node:
            names_ok = self.test(node["propertyNames"], "k")
            if names_ok != "True":
                loop = ["    if isinstance(v, dict):", "        for k in v:"]
                loop += [f"            if not {names_ok}:", "                return False"]
                tests.append(f"{self.function('n', [*loop, '    return True'])}({v})")
        if "anyOf" in node:
            options = node["anyOf"]
            tests.append(
                _any([f"{v} is None" if _is_null_schema(o) else self.test(o, v) for o in options])
            )
        if "$ref" in node:
            tests.append(f"{self.ref(node['$ref'])}({v})")
        return _all(tests)

    def search(self, pattern: str) -> str:
        """A constant naming the ``search`` of ``pattern`` (which must compile)."""
        _regex(pattern)
        end = r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else ""
        text = pattern[:-1] if end else pattern
        return self.constant(f"re.compile({text + end!r}).search")

    def same(self, expected: Any, v: str) -> str:
        kind = type(expected)
        name = kind.__name__ if kind in (bool, int, float, str, list, dict) else "type(None)"
        return f"(type({v}) is {name} and {v} == {self.value(expected)})"

    def enum(self, options: list[Any], v: str) -> str:
        if options and all(type(option) is str for option in options):
            return f"(type({v}) is str and {v} in {self.value(frozenset(options))})"
        return _any([self.same(option, v) for option in options])

    def between(self, low: Any, high: Any, v: str) -> str:
        """``low <= v <= high``, without a bound that is ``None``."""
        if low is None:
            return "True" if high is None else f"{v} <= {self.value(high)}"
        if high is None:
            return f"{self.value(low)} <= {v}"
        return f"{self.value(low)} <= {v} <= {self.value(high)}"

    def guarded(self, type_name: str, known: str | None, tests: list[str], v: str) -> list[str]:
        """``tests`` that apply to values of ``type_name`` only (and pass the others)."""
        test = _all(tests)
        if test == "True":
            return []
        if known == type_name or (type_name == "number" and known == "integer"):
            return [test]
        return [f"(not {_TYPE_TESTS[type_name].format(v=v)} or {test})"]

    def string(self, node: Mapping[str, Any], v: str, known: str | None) -> list[str]:
        low, high = node.get("minLength"), node.get("maxLength")
        pattern = node.get("pattern")
        if low is None and high is None and pattern is None:
            return []
        tests = [self.between(low or None, high, f"len({v})")]
        if pattern is not None:
            tests.append(f"{self.search(pattern)}({v}) is not None")
        return self.guarded("string", known, tests, v)

    def number(self, node: Mapping[str, Any], v: str, known: str | None) -> list[str]:
        if "minimum" not in node and "maximum" not in node:
            return []
        test = self.between(node.get("minimum"), node.get("maximum"), v)
        return self.guarded("number", known, [test], v)

    def array(self, node: Mapping[str, Any], v: str, known: str | None) -> list[str]:
        out: list[str] = []
        low, high = node.get("minItems"), node.get("maxItems")
        if low is not None or high is not None:
            out += self.guarded("array", known, [self.between(low or None, high, f"len({v})")], v)
        if "items" in node:
            item = self.test(node["items"], "x")
            if item != "True":
                loop = ["    if isinstance(v, list):", "        for x in v:"]
                loop += [f"            if not {item}:", "                return False"]
                out.append(f"{self.function('a', [*loop, '    return True'])}({v})")
        return out

    def object(self, node: Mapping[str, Any], known: bool) -> str:
        """The name of a function checking the object keywords of ``node``.

        With ``known``, the function is only called with a ``dict``.
        """
        lines = [] if known else ["    if not isinstance(v, dict):", "        return True"]
        required = list(node.get("required", ()))
        if required:
            missing = " or ".join(f"{self.value(name)} not in v" for name in required)
            lines += [f"    if {missing}:", "        return False"]
        lines += ["    for k, x in v.items():", "        if not isinstance(k, str):"]
        lines.append("            return False")
        branch = "if"
        for name, sub in node.get("properties", {}).items():
            lines.append(f"        {branch} k == {self.value(name)}:")
            test = self.test(sub, "x")
            if test != "True":
                lines += [f"            if not {test}:", "                return False"]
            lines.append("            continue")
            branch = "elif"
        patterns = [
            (self.search(pattern), self.test(sub, "x"))
            for pattern, sub in node.get("patternProperties", {}).items()
        ]
        extra = node.get("additionalProperties", not patterns)
        other = "False" if extra is False else self.test(extra, "x")
        if patterns:
            lines.append("        matched = False")
            for search, test in patterns:
                lines.append(f"        if {search}(k) is not None:")
                lines += [f"            if not {test}:", "                return False"]
                lines.append("            matched = True")
            if other == "False":
                lines += ["        if not matched:", "            return False"]
            elif other != "True":
                lines += [f"        if not matched and not {other}:", "            return False"]
        elif other == "False":
            lines.append("        return False")
        elif other != "True":
            lines += [f"        if not {other}:", "            return False"]
        lines.append("    return True")
        return self.function("o", lines)


def _source_of(value: Any) -> str:
    """Python source that evaluates to ``value`` (JSON data, or a set of strings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, frozenset) and all(type(item) is str for item in value):
        return "frozenset({" + ", ".join(repr(item) for item in sorted(value)) + "})"
    source = repr(value)
    try:
        same = eval(source, {"__builtins__": {}}) == value
    except Exception:
        same = False
    if not same:
        raise UnsupportedSchema(f"a value the check cannot hold: {value!r}")
    return source


def _generate(schema: Mapping[str, Any], prefix: str = "") -> tuple[list[str], str]:
    """(constant definitions and functions, the name of the check of ``schema``)."""
    generator = _Generator(schema, prefix)
    root = generator.test(schema, "v")
    name = f"{prefix}_check"
    functions = [*generator.functions, f"def {name}(v: Any) -> bool:\n    return {root}"]
    return ["\n".join(generator.constants), *functions], name


def check_source(schema: Mapping[str, Any]) -> str:
    """The Python source :func:`compile_check` runs for ``schema`` (to read it)."""
    return "\n\n\n".join(_generate(schema)[0]) + "\n"


def compile_check(schema: Mapping[str, Any]) -> Check:
    """Build the check of ``schema`` (its ``$defs`` resolve ``#/$defs/...`` references).

    Raises :class:`UnsupportedSchema` for a keyword, type or reference the
    check does not implement.
    """
    source = check_source(schema)
    namespace: dict[str, Any] = {"re": re, "Any": Any}
    exec(compile(source, "<schema check>", "exec"), namespace)
    check: Check = namespace["_check"]
    return check


def module_source(schemas: Mapping[str, Mapping[str, Any]], digest: str, header: str) -> str:
    """A module holding the checks of ``schemas`` by name, as ``CHECKS``.

    ``digest`` is kept as ``SOURCE_DIGEST`` (what the checks were made from);
    ``header`` is the module's docstring.
    """
    parts = [f'"""{header}"""', "import re\nfrom typing import Any"]
    names = {}
    for key, schema in schemas.items():
        pieces, names[key] = _generate(schema, "_" + re.sub(r"\W", "_", key))
        parts += [piece for piece in pieces if piece]
    parts.append(f"SOURCE_DIGEST = {digest!r}")
    table = "".join(f"    {key!r}: {name},\n" for key, name in names.items())
    parts.append("CHECKS: dict[str, Any] = {\n" + table + "}")
    return "\n\n\n".join(parts) + "\n"
