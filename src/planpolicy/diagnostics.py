"""Located problems: the one error shape used by every stage and every surface.

A :class:`Diagnostic` is a value, not an exception. Stages collect them in a
:class:`DiagnosticSink` (which enforces a limit so a hostile input cannot
produce an unbounded report) and the CLI formats them.

Message style: lowercase, no trailing period, the user's values in backticks,
policy terms rather than Python class names.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LIMIT",
    "Diagnostic",
    "DiagnosticSink",
    "Location",
    "Severity",
]

DEFAULT_LIMIT = 500


class Severity(enum.Enum):
    """How bad a diagnostic is; only errors fail a lint run without ``--strict``."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Sort key: errors first."""
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int = 1
    column: int = 1
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def shifted(self, line_offset: int, column: int) -> Location:
        """A location ``line_offset`` lines below this one, at ``column``."""
        return Location(self.file, self.line + line_offset, column)


@dataclass(frozen=True)
class Diagnostic:
    """One problem a user can cause: stable code, severity, message, location, hint."""

    code: str
    message: str
    location: Location | None = None
    severity: Severity = Severity.ERROR
    hint: str | None = None
    rule: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, int, str, str]:
        loc = self.location
        return (
            loc.file if loc else "",
            loc.line if loc else 0,
            loc.column if loc else 0,
            self.severity.rank,
            self.code,
            self.message,
        )

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.severity.value}: {self.message} [{self.code}]"

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form (used by the ``json`` output format)."""
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "hint": self.hint,
            "rule": self.rule,
        }


@dataclass
class DiagnosticSink:
    """Collects diagnostics up to a limit; counts (but drops) the rest."""

    limit: int = DEFAULT_LIMIT
    items: list[Diagnostic] = field(default_factory=list)
    dropped: int = 0

    def add(self, diagnostic: Diagnostic) -> None:
        if len(self.items) >= self.limit:
            self.dropped += 1
            return
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            self.add(diagnostic)

    def error(
        self,
        code: str,
        message: str,
        location: Location | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self.add(Diagnostic(code, message, location, Severity.ERROR, hint))

    def warning(
        self,
        code: str,
        message: str,
        location: Location | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self.add(Diagnostic(code, message, location, Severity.WARNING, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
