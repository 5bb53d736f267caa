"""Reading input files (plans here, contexts in :mod:`planpolicy.facts`) with located problems.

Files are read with the hardened policy loader (size, depth and alias limits,
no unsafe tags) so a plan file gets the same protection as a policy file, and
every problem is a :class:`~planpolicy.diagnostics.Diagnostic` with
``file:line:column``. JSON files are read the same way (JSON is YAML).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Location
from planpolicy.loader import SourceDocument, load_file
from planpolicy.plan import RevenuePlanV1

__all__ = [
    "INPUT_INVALID",
    "InputError",
    "located",
    "plan_from_document",
    "read_document",
    "read_plan",
]

#: Diagnostic code of a plan or context value that does not fit its schema.
INPUT_INVALID = "PP201"

JsonPath = tuple[str | int, ...]


class InputError(ValueError):
    """An input file cannot be used; ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        first = str(diagnostics[0]) if diagnostics else "invalid input"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)
        self.diagnostics = tuple(diagnostics)


def read_document(path: str | Path, what: str) -> SourceDocument:
    """The single YAML/JSON document of ``path``; ``what`` names it in messages."""
    sink = DiagnosticSink()
    loaded = load_file(path, sink)
    if sink.has_errors or loaded is None:
        raise InputError(sink.sorted() or [Diagnostic("PP108", f"cannot read {what}")])
    if len(loaded.documents) != 1:
        found = len(loaded.documents)
        message = f"a {what} file holds one document, found {found}"
        raise InputError([Diagnostic(INPUT_INVALID, message, Location(str(path)))])
    return loaded.documents[0]


def located(
    source: SourceDocument | None, base: JsonPath, path: Sequence[str | int]
) -> Location | None:
    """Location of ``base + path`` in ``source`` (its nearest existing node), if any."""
    return source.location((*base, *path)) if source is not None else None


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def plan_from_document(
    data: Any, source: SourceDocument | None = None, base: JsonPath = ()
) -> RevenuePlanV1:
    """Validate ``data`` (found at ``base`` in ``source``) as a RevenuePlanV1."""
    try:
        return RevenuePlanV1.model_validate(data)
    except ValidationError as exc:
        diagnostics = [
            Diagnostic(
                INPUT_INVALID,
                f"plan `{_dotted(err['loc'])}`: {err['msg'][:1].lower()}{err['msg'][1:]}",
                located(source, base, [p for p in err["loc"] if isinstance(p, str | int)]),
            )
            for err in exc.errors()
        ]
        raise InputError(diagnostics) from None


def read_plan(path: str | Path) -> RevenuePlanV1:
    """Read a plan file (YAML or JSON); raises :class:`InputError`."""
    doc = read_document(path, "plan")
    return plan_from_document(doc.data, doc)
