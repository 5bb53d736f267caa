"""Validated policy documents, read like the models that declare them.

The pydantic models in :mod:`planpolicy.documents` declare every document
kind; ``planpolicy schema --write`` turns them into JSON Schemas and into the
package's ``document_shapes.json`` (:data:`SHAPES_FILE`): each kind's schema,
a field table per model (attribute name, YAML key, default, nesting) and the
base evaluation context. ``planpolicy schema --check`` fails when the file
and the models differ.

:func:`read_document` checks a loaded document against its kind's schema
(:mod:`planpolicy.schemacheck`, which follows the models in strict mode) and
returns it as :class:`Record` objects that have the models' attribute names,
defaults and nesting. Loading policies therefore never builds the pydantic
models, which costs more than the rest of a one-file ``planpolicy lint``.

Values are the loaded ones (shared with the source document, except that an
``int`` in a ``float`` field becomes a ``float`` as the models make it): treat
them as read-only.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from planpolicy.schemacheck import Check, compile_check

__all__ = [
    "API_VERSION",
    "SHAPES_FILE",
    "Record",
    "document_kinds",
    "kind_schema",
    "read_document",
    "shapes",
]

API_VERSION = "planpolicy/v1"
"""The ``apiVersion`` of every policy document."""

SHAPES_FILE = Path(__file__).with_name("document_shapes.json")
"""The generated document shapes (written by ``planpolicy schema --write``)."""


def shapes_digest(text: str) -> str:
    """The digest that ties the packaged checks to the shapes text they were made from."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@cache
def _shapes_file() -> tuple[dict[str, Any], str]:
    text = SHAPES_FILE.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data, shapes_digest(text)


def shapes() -> dict[str, Any]:
    """The parsed :data:`SHAPES_FILE` (kinds, models, context); do not modify it."""
    return _shapes_file()[0]


def document_kinds() -> tuple[str, ...]:
    """The document kinds, in declaration order."""
    return tuple(shapes()["kinds"])


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a document kind (``KeyError`` for unknown kinds); do not modify it."""
    schema: dict[str, Any] = shapes()["kinds"][kind]
    return schema


class Record:
    """A validated document, or part of one, with its model's attributes.

    Immutable, compared by model name and values, printed like the model,
    picklable. ``model_name`` is the declaring model's class name.
    """

    __slots__ = ("__dict__", "model_name")

    model_name: str

    def __init__(self, model_name: str, values: dict[str, Any]) -> None:
        object.__setattr__(self, "model_name", model_name)
        object.__setattr__(self, "__dict__", values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.model_name} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.model_name} is read-only")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.model_name == other.model_name and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((self.model_name, tuple(self.__dict__.items())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{self.model_name}({fields})"

    def __reduce__(self) -> tuple[type[Record], tuple[str, dict[str, Any]]]:
        return (Record, (self.model_name, dict(self.__dict__)))

    def as_dict(self) -> dict[str, Any]:
        """The values by attribute name, nested records as dicts (like ``model_dump()``)."""
        return {name: _plain(value) for name, value in self.__dict__.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


Reader = Callable[[Any], Any]
_MISSING = object()


def _to_float(value: Any) -> Any:
    return float(value) if type(value) is int else value


def _reader(shape: Any) -> Reader | None:
    """How a value of ``shape`` (see :func:`planpolicy.schemagen.shapes`) is read; None: as is."""
    if shape == "value":
        return None
    if shape == "float":
        return _to_float
    if "model" in shape:
        name = shape["model"]
        return lambda v: _build(name, v)
    inner = _reader(shape["list"] if "list" in shape else shape["dict"])
    assert inner is not None  # generation folds containers of plain values into "value"
    if "list" in shape:
        return lambda v: [x if x is None else inner(x) for x in v]
    return lambda v: {k: x if x is None else inner(x) for k, x in v.items()}


def _default_maker(default: Any) -> Callable[[], Any] | None:
    """A function making a fresh copy of a mutable default; None for immutable ones."""
    if not isinstance(default, (dict, list)):
        return None
    if not default:
        return type(default)
    return lambda: copy.deepcopy(default)


@cache
def _fields(model: str) -> tuple[tuple[str, str, Reader | None, Any, Any], ...]:
    """(attribute, YAML key, reader, default or _MISSING, default maker) per field."""
    table = shapes()["models"][model]["fields"]
    out = []
    for f in table:
        default = f.get("default", _MISSING)
        out.append((f["name"], f["alias"], _reader(f["shape"]), default, _default_maker(default)))
    return tuple(out)


def _build(model: str, data: Mapping[str, Any]) -> Record:
    values: dict[str, Any] = {}
    for name, alias, reader, default, make in _fields(model):
        value = data.get(alias, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(f"{model}: missing `{alias}` in checked data")
            value = default if make is None else make()
        values[name] = value if reader is None or value is None else reader(value)
    return Record(model, values)


@cache
def _check(kind: str) -> Check:
    """The check of ``kind``: the packaged one if it was made from these shapes."""
    try:
        from planpolicy import document_checks
    except ImportError:  # not generated yet
        return compile_check(kind_schema(kind))
    if _shapes_file()[1] == document_checks.SOURCE_DIGEST:
        check: Check = document_checks.CHECKS[kind]
        return check
    return compile_check(kind_schema(kind))


def read_document(kind: str, data: Any) -> Record | None:
    """``data`` as a :class:`Record` of ``kind``'s model, or ``None`` when it is not valid."""
    if not _check(kind)(data):
        return None
    return _build(kind, data)
