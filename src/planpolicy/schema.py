"""Validate loaded documents against their kind's JSON Schema, with locations.

Each :class:`~planpolicy.loader.SourceDocument` is checked against the schema
generated from its pydantic model (the same text as the checked-in file), so
the editor, CI and the engine agree. Errors become located diagnostics; a
valid document becomes a :class:`~planpolicy.docrecords.Record` with the
model's attributes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from planpolicy.diagnostics import DiagnosticSink
from planpolicy.docrecords import API_VERSION, Record, document_kinds, kind_schema, read_document
from planpolicy.loader import SourceDocument

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as SchemaError

__all__ = ["TypedDocument", "report_schema_errors", "validate_document"]


@dataclass(frozen=True)
class TypedDocument:
    """A schema-valid document with the source it came from.

    ``model`` has the attributes of the kind's model in
    :mod:`planpolicy.documents` (e.g. ``model.spec.steps``).
    """

    kind: str
    model: Record
    source: SourceDocument

    @cached_property
    def name(self) -> str:
        """``metadata.name`` (read once: the compiler asks for it per rule)."""
        return str(self.source.data["metadata"]["name"])

    @cached_property
    def version(self) -> int:
        """``metadata.version`` (read once)."""
        return int(self.source.data["metadata"]["version"])


@cache
def _validator(kind: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(kind_schema(kind))


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "(document)"


def _allowed_properties(schema: dict[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def _report(error: SchemaError, doc: SourceDocument, sink: DiagnosticSink) -> None:
    path = tuple(error.absolute_path)
    validator = error.validator
    instance = error.instance
    value: Any = error.validator_value
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = _allowed_properties(error.schema if isinstance(error.schema, dict) else {})
        for key in sorted(k for k in instance if k not in allowed):
            close = difflib.get_close_matches(key, allowed, n=1)
            sink.error(
                "PP202",
                f"unknown field `{key}` in `{_dotted(path)}`",
                doc.key_location((*path, key)),
                hint=f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(allowed)}",
            )
        return
    if validator == "required":
        missing = [k for k in value if isinstance(instance, dict) and k not in instance]
        for key in missing:
            sink.error(
                "PP204", f"missing required field `{key}` in `{_dotted(path)}`", doc.location(path)
            )
        return
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else str(expected)
        sink.error(
            "PP203",
            f"`{_dotted(path)}` must be {expected_text}, got {_json_type(instance)}",
            doc.location(path),
        )
        return
    if validator in ("enum", "const"):
        options = value if validator == "enum" else [value]
        shown = ", ".join(f"`{o}`" for o in options)
        sink.error(
            "PP206",
            f"`{_dotted(path)}` must be one of {shown}, got `{instance}`",
            doc.location(path),
        )
        return
    if validator == "anyOf" and error.context:
        # Optional fields: report the most relevant branch (not the `null` one).
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if best.validator == "type" and isinstance(error.validator_value, list):
            types = [o.get("type") for o in error.validator_value if isinstance(o, dict)]
            expected_text = " or ".join(str(t) for t in types if t)
            sink.error(
                "PP203",
                f"`{_dotted(path)}` must be {expected_text}, got {_json_type(instance)}",
                doc.location(path),
            )
            return
        _report(best, doc, sink)
        return
    sink.error("PP201", f"`{_dotted(path)}`: {_short(error.message)}", doc.location(path))


def _short(message: str) -> str:
    text = message if len(message) <= 200 else message[:197] + "..."
    return text[:1].lower() + text[1:]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_document(doc: SourceDocument, sink: DiagnosticSink) -> TypedDocument | None:
    """Check the envelope and the kind's schema; return the typed document or ``None``."""
    data = doc.data
    if not isinstance(data, dict):
        sink.error(
            "PP205",
            f"a policy document must be a mapping, got {_json_type(data)}",
            doc.location(()),
        )
        return None
    api_version = data.get("apiVersion")
    if api_version != API_VERSION:
        where = ("apiVersion",) if "apiVersion" in data else ()
        sink.error(
            "PP205",
            f"`apiVersion` must be `{API_VERSION}`, got `{api_version}`",
            doc.location(where),
        )
        return None
    kind = data.get("kind")
    kinds = document_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        known = ", ".join(f"`{k}`" for k in kinds)
        close = difflib.get_close_matches(str(kind), list(kinds), n=1)
        sink.error(
            "PP205",
            f"unknown document kind `{kind}`",
            doc.location(("kind",) if "kind" in data else ()),
            hint=f"did you mean `{close[0]}`?" if close else f"known kinds: {known}",
        )
        return None
    # Fast path: a check that follows the models in strict mode.
    record = read_document(kind, data)
    if record is not None:
        return TypedDocument(kind, record, doc)
    # Only for invalid documents: the JSON Schema gives the same verdict with
    # paths we can locate and phrase well.
    errors = sorted(
        _validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))
    )
    for error in errors:
        _report(error, doc, sink)
    if not errors:  # constraints the JSON Schema is looser about: the model phrases them
        _report_model_errors(kind, doc, sink)
    return None


def _report_model_errors(kind: str, doc: SourceDocument, sink: DiagnosticSink) -> None:
    from pydantic import ValidationError

    from planpolicy.documents import DOCUMENT_MODELS

    try:
        DOCUMENT_MODELS[kind].model_validate(doc.data, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            sink.error("PP201", f"`{_dotted(loc)}`: {err['msg'].lower()}", doc.location(loc))
        return
    sink.error(  # the check and the model disagree: a defect, never a silent pass
        "PP201", f"`{kind}` document rejected by the shape check", doc.location(())
    )


def report_schema_errors(
    validator: Draft202012Validator, doc: SourceDocument, sink: DiagnosticSink
) -> bool:
    """Report every violation of ``validator``'s schema by ``doc``, located; False if none.

    For files that are not policy documents (e.g. simulation scenarios) but
    deserve the same diagnostics: unknown fields with a "did you mean", wrong
    types, missing fields and values not allowed.
    """
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        _report(error, doc, sink)
    return bool(errors)
