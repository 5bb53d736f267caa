"""CEL types for the expression checker: a small immutable lattice and its algebra.

cel-python has no type checker, so :mod:`planpolicy.cel` infers a :class:`CelType`
for every sub-expression from the declared evaluation context. This module holds
the types, the operator rules (which combinations are certainly wrong) and the
conversion of the context's JSON Schema into types. It imports neither celpy nor
lark.

``DYN`` means "unknown": every rule accepts it, so only certain mistakes are
reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

__all__ = [
    "BOOL",
    "BYTES",
    "DOUBLE",
    "DURATION",
    "DYN",
    "FUNCTIONS",
    "INT",
    "MACROS",
    "METHODS",
    "NULL",
    "STRING",
    "TIMESTAMP",
    "UINT",
    "CelType",
    "ListType",
    "MapType",
    "ObjectType",
    "PrimitiveType",
    "Signature",
    "arithmetic_result",
    "element_type",
    "equality_problem",
    "join",
    "kind",
    "membership_problem",
    "mismatch_hint",
    "ordering_problem",
    "types_from_schema",
]


class CelType:
    """Base of all checker types; every instance is immutable and hashable."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """The CEL spelling of the type, as used in messages (``int``, ``list(string)``)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class PrimitiveType(CelType):
    """A type without parameters: ``int``, ``string``, ``timestamp``, ``dyn`` and so on."""

    label: str

    @property
    def name(self) -> str:
        """The CEL spelling of the type."""
        return self.label


BOOL: Final = PrimitiveType("bool")
INT: Final = PrimitiveType("int")
UINT: Final = PrimitiveType("uint")
DOUBLE: Final = PrimitiveType("double")
STRING: Final = PrimitiveType("string")
BYTES: Final = PrimitiveType("bytes")
TIMESTAMP: Final = PrimitiveType("timestamp")
DURATION: Final = PrimitiveType("duration")
NULL: Final = PrimitiveType("null")
DYN: Final = PrimitiveType("dyn")


@dataclass(frozen=True, slots=True)
class ListType(CelType):
    """A list whose elements have type ``elem``."""

    elem: CelType

    @property
    def name(self) -> str:
        """The CEL spelling of the type."""
        return f"list({self.elem.name})"


@dataclass(frozen=True, slots=True)
class MapType(CelType):
    """A map from ``key`` to ``value``."""

    key: CelType
    value: CelType

    @property
    def name(self) -> str:
        """The CEL spelling of the type."""
        return f"map({self.key.name}, {self.value.name})"


@dataclass(frozen=True)
class ObjectType(CelType):
    """A map with declared string keys (a JSON object with ``properties``).

    ``open`` means fields that are not declared may be present (they are typed
    ``DYN``); on a closed object an undeclared field is certainly a mistake.
    """

    fields: Mapping[str, CelType]
    open: bool = False
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        frozen = MappingProxyType(dict(self.fields))
        object.__setattr__(self, "fields", frozen)
        object.__setattr__(self, "_hash", hash((frozenset(frozen.items()), self.open)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def name(self) -> str:
        """The CEL spelling of the type (CEL would say ``map(string, dyn)``)."""
        return "object"

    def field_type(self, name: str) -> CelType | None:
        """The type of field ``name``: declared, ``DYN`` if the object is open, else None."""
        found = self.fields.get(name)
        if found is not None:
            return found
        return DYN if self.open else None


# --- the algebra --------------------------------------------------------------

_NUMBERS: Final = frozenset({INT, UINT, DOUBLE})
_ORDERED: Final = frozenset({INT, UINT, DOUBLE, STRING, BYTES, BOOL, TIMESTAMP, DURATION})


def kind(t: CelType) -> str:
    """The type's constructor: ``list``, ``map`` (also for objects) or the primitive's name."""
    if isinstance(t, ListType):
        return "list"
    if isinstance(t, MapType | ObjectType):
        return "map"
    return t.name


def join(a: CelType, b: CelType) -> CelType:
    """The most precise type covering both ``a`` and ``b`` (``DYN`` when they differ)."""
    if a == b:
        return a
    if a == NULL:
        return b
    if b == NULL:
        return a
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.elem, b.elem))
    if isinstance(a, MapType) and isinstance(b, MapType):
        return MapType(join(a.key, b.key), join(a.value, b.value))
    return DYN


def equality_problem(a: CelType, b: CelType, *, negated: bool = False) -> str | None:
    """Why ``a == b`` (``a != b`` when ``negated``) is certainly wrong, or None.

    Measured on cel-python: numbers of different types (and a number with
    ``null``) raise, and so do lists and maps with ``!= null``; other differing
    types compare unequal, which is always a mistake in a rule, so they are
    reported too.
    """
    if DYN in (a, b):
        return None
    if NULL in (a, b):
        other = b if a == NULL else a
        if other in _NUMBERS or (negated and kind(other) in ("list", "map")):
            return f"cannot compare `{other}` with `null`"
        return None
    if kind(a) != kind(b):
        return f"cannot compare `{a}` with `{b}`"
    if isinstance(a, ListType) and isinstance(b, ListType):
        return equality_problem(a.elem, b.elem)
    return None


def ordering_problem(a: CelType, b: CelType) -> str | None:
    """Why ``a < b`` (and ``<=``, ``>``, ``>=``) is certainly wrong, or None."""
    if DYN in (a, b):
        other = b if a == DYN else a
        if other == DYN or other in _ORDERED:
            return None
        return f"values of type `{other}` cannot be ordered"
    if a == b and a in _ORDERED:
        return None
    return f"cannot compare `{a}` with `{b}`"


_ARITH: Final[dict[tuple[str, CelType, CelType], CelType]] = {}
for _t in (INT, UINT, DOUBLE):
    for _op in "+-*/":
        _ARITH[(_op, _t, _t)] = _t
for _t in (INT, UINT):
    _ARITH[("%", _t, _t)] = _t
_ARITH.update(
    {
        ("+", STRING, STRING): STRING,
        ("+", BYTES, BYTES): BYTES,
        ("+", TIMESTAMP, DURATION): TIMESTAMP,
        ("+", DURATION, TIMESTAMP): TIMESTAMP,
        ("+", DURATION, DURATION): DURATION,
        ("-", TIMESTAMP, TIMESTAMP): DURATION,
        ("-", TIMESTAMP, DURATION): TIMESTAMP,
        ("-", DURATION, DURATION): DURATION,
    }
)
# What a DYN operand may combine with, per operator (the other operand's type).
_ARITH_WITH_DYN: Final = {
    op: frozenset(t for (o, left, right) in _ARITH for t in (left, right) if o == op)
    for op in "+-*/%"
}


def arithmetic_result(op: str, a: CelType, b: CelType) -> CelType | None:
    """The type of ``a op b`` for ``op`` in ``+ - * / %``, or None if certainly wrong."""
    if DYN in (a, b):
        other = b if a == DYN else a
        if other == DYN or other in _ARITH_WITH_DYN[op]:
            return DYN
        if op == "+" and isinstance(other, ListType):
            return DYN
        return None
    if op == "+" and isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.elem, b.elem))
    return _ARITH.get((op, a, b))


def membership_problem(item: CelType, container: CelType) -> str | None:
    """Why ``item in container`` is certainly wrong, or None."""
    if container == DYN:
        return None
    if isinstance(container, ListType):
        return equality_problem(item, container.elem)
    if isinstance(container, MapType):
        return equality_problem(item, container.key)
    if isinstance(container, ObjectType):
        return equality_problem(item, STRING)
    return f"`in` needs a list or a map on the right, got `{container}`"


def element_type(collection: CelType) -> CelType | None:
    """What a macro's loop variable ranges over (list elements, map keys), or None."""
    if isinstance(collection, ListType):
        return collection.elem
    if isinstance(collection, MapType):
        return collection.key
    if isinstance(collection, ObjectType):
        return STRING
    if collection == DYN:
        return DYN
    return None


# --- the standard library, coarsely ----------------------------------------------


class Signature(NamedTuple):
    """What a standard function accepts, by kind (see :func:`kind`); ``None`` means anything."""

    arity: tuple[int, int]
    receiver: frozenset[str]
    params: tuple[frozenset[str] | None, ...]
    result: CelType


def _kinds(*names: str) -> frozenset[str]:
    return frozenset(names)


_SIZED: Final = _kinds("string", "bytes", "list", "map")
_STR: Final = _kinds("string")
_NUMERIC_SOURCES: Final = _kinds("int", "uint", "double", "string")
_NONE: Final[frozenset[str]] = frozenset()
_DATE_PARTS: Final = (
    "getFullYear",
    "getMonth",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getDate",
)
_CLOCK_PARTS: Final = ("getHours", "getMinutes", "getSeconds", "getMilliseconds")

METHODS: Final[Mapping[str, Signature]] = MappingProxyType(
    {
        "size": Signature((0, 0), _SIZED, (), INT),
        "contains": Signature((1, 1), _STR, (_STR,), BOOL),
        "startsWith": Signature((1, 1), _STR, (_STR,), BOOL),
        "endsWith": Signature((1, 1), _STR, (_STR,), BOOL),
        "matches": Signature((1, 1), _STR, (_STR,), BOOL),
        **{name: Signature((0, 1), _kinds("timestamp"), (_STR,), INT) for name in _DATE_PARTS},
        **{
            name: Signature((0, 1), _kinds("timestamp", "duration"), (_STR,), INT)
            for name in _CLOCK_PARTS
        },
    }
)
"""Receiver-style functions (``x.size()``); macros are in :data:`MACROS`."""

FUNCTIONS: Final[Mapping[str, Signature]] = MappingProxyType(
    {
        "size": Signature((1, 1), _NONE, (_SIZED,), INT),
        "matches": Signature((2, 2), _NONE, (_STR, _STR), BOOL),
        "timestamp": Signature((1, 1), _NONE, (_kinds("string", "timestamp"),), TIMESTAMP),
        "duration": Signature((1, 1), _NONE, (_kinds("string", "duration"),), DURATION),
        "int": Signature((1, 1), _NONE, (_NUMERIC_SOURCES | {"timestamp"},), INT),
        "uint": Signature((1, 1), _NONE, (_NUMERIC_SOURCES,), UINT),
        "double": Signature((1, 1), _NONE, (_NUMERIC_SOURCES,), DOUBLE),
        "string": Signature(
            (1, 1), _NONE, (_NUMERIC_SOURCES | {"bytes", "bool", "timestamp", "duration"},), STRING
        ),
        "bool": Signature((1, 1), _NONE, (_kinds("bool", "string"),), BOOL),
        "bytes": Signature((1, 1), _NONE, (_kinds("bytes", "string"),), BYTES),
        "type": Signature((1, 1), _NONE, (None,), DYN),
        "dyn": Signature((1, 1), _NONE, (None,), DYN),
    }
)
"""Global functions (``size(x)``); ``has`` is a macro handled by the checker."""

MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
"""Comprehension macros, called as methods with a loop variable: ``xs.exists(x, ...)``."""


def mismatch_hint(a: CelType, b: CelType) -> str | None:
    """A suggestion for a type mismatch between ``a`` and ``b``, when there is a usual fix."""
    pair = {a, b}
    if pair == {INT, DOUBLE}:
        return (
            "CEL never mixes `int` and `double`: write `1.0` for a double,"
            " or convert with `double(...)`"
        )
    if pair == {INT, UINT}:
        return "write `1u` for a uint, or convert with `int(...)`"
    if NULL in pair and pair & _NUMBERS:
        return (
            "cel-python raises when a number is compared with `null`;"
            " test `type(x) == null_type` instead"
        )
    if NULL in pair and {kind(t) for t in pair} & {"list", "map"}:
        return "cel-python raises on `!= null` for lists and maps; write `!(x == null)`"
    if pair == {TIMESTAMP, STRING}:
        return 'convert the text with `timestamp("2025-01-31T00:00:00Z")`'
    if pair == {DURATION, STRING}:
        return 'convert the text with `duration("720h")`'
    return None


# --- JSON Schema ----------------------------------------------------------------

_SIMPLE: Final = {
    "integer": INT,
    "number": DOUBLE,
    "boolean": BOOL,
    "string": STRING,
    "null": NULL,
}
_STRING_FORMATS: Final = {"date-time": TIMESTAMP, "date": TIMESTAMP, "duration": DURATION}


class _SchemaConverter:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.resolving: set[str] = set()

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        node: Any = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node

    def convert(self, schema: Any) -> CelType:
        if not isinstance(schema, Mapping):
            return DYN
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.resolve(ref)
            if target is None or ref in self.resolving:
                return DYN
            self.resolving.add(ref)
            try:
                return self.convert(target)
            finally:
                self.resolving.discard(ref)
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                return self.alternatives(options)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            return self.convert(all_of[0])
        declared = schema.get("type")
        if isinstance(declared, list):
            return self.alternatives([{**schema, "type": t} for t in declared])
        if declared is None:
            declared = self.implied_type(schema)
        if declared == "object":
            return self.object(schema)
        if declared == "array":
            items = schema.get("items")
            return ListType(self.convert(items) if isinstance(items, Mapping) else DYN)
        if declared == "string":
            fmt = schema.get("format")
            return _STRING_FORMATS.get(fmt, STRING) if isinstance(fmt, str) else STRING
        if isinstance(declared, str):
            return _SIMPLE.get(declared, DYN)
        return DYN

    def implied_type(self, schema: Mapping[str, Any]) -> str | None:
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        values = schema.get("enum")
        if "const" in schema:
            values = [schema["const"]]
        if isinstance(values, list) and values:
            if all(isinstance(v, str) for v in values):
                return "string"
            if all(isinstance(v, bool) for v in values):
                return "boolean"
            if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                return "integer"
        return None

    def alternatives(self, options: list[Any]) -> CelType:
        converted = [self.convert(option) for option in options]
        non_null = [t for t in converted if t != NULL]
        if not non_null:
            return NULL
        first = non_null[0]
        return first if all(t == first for t in non_null[1:]) else DYN

    def object(self, schema: Mapping[str, Any]) -> CelType:
        properties = schema.get("properties")
        additional = schema.get("additionalProperties", True)
        if schema.get("unevaluatedProperties") is False and "additionalProperties" not in schema:
            additional = False
        if not isinstance(properties, Mapping) or not properties:
            if isinstance(additional, Mapping):
                return MapType(STRING, self.convert(additional))
            return ObjectType({}, open=additional is not False)
        fields = {str(name): self.convert(sub) for name, sub in properties.items()}
        has_patterns = bool(schema.get("patternProperties"))
        return ObjectType(fields, open=additional is not False or has_patterns)


def types_from_schema(schema: Mapping[str, Any]) -> ObjectType:
    """Convert the evaluation context's JSON Schema (Draft 2020-12 subset) into types.

    ``object`` with ``properties`` becomes an :class:`ObjectType` (open unless
    ``additionalProperties`` is false); an object with only an
    ``additionalProperties`` schema becomes ``MapType(STRING, ...)``; ``integer``,
    ``number``, ``boolean``, ``string`` and ``null`` map to ``INT``, ``DOUBLE``,
    ``BOOL``, ``STRING`` and ``NULL``; strings with ``format`` ``date-time`` or
    ``date`` become ``TIMESTAMP`` and ``duration`` becomes ``DURATION``; arrays
    become ``ListType`` of their ``items``; a nullable type (``["string", "null"]``
    or an ``anyOf`` with a null branch) becomes the non-null type; an ``enum`` of
    strings is ``STRING``; ``$ref`` to ``#/$defs/...`` is resolved; anything else
    is ``DYN``. A root that is not an object with properties becomes an open,
    empty object (every variable ``DYN``).
    """
    converted = _SchemaConverter(schema).convert(schema)
    if isinstance(converted, ObjectType):
        return converted
    return ObjectType({}, open=True)
