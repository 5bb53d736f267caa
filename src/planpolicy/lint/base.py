"""What a lint rule is and what it sees."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from planpolicy.diagnostics import Diagnostic, Location, Severity
from planpolicy.model import CompiledPlanType, PolicyBundle
from planpolicy.schema import TypedDocument

__all__ = ["LintContext", "Rule", "RuleInfo"]


@dataclass(frozen=True)
class LintContext:
    """The documents of one lint run and whatever compiled without errors."""

    documents: tuple[TypedDocument, ...]
    plan_types: Mapping[str, CompiledPlanType]
    bundle: PolicyBundle | None

    def of_kind(self, kind: str) -> Iterator[TypedDocument]:
        """Documents of one kind, in file order."""
        return (d for d in self.documents if d.kind == kind)


@dataclass(frozen=True)
class RuleInfo:
    """Identity of a rule: stable code, name, severity and a one-line summary."""

    code: str
    name: str
    severity: Severity
    summary: str

    def problem(
        self, message: str, location: Location | None, hint: str | None = None
    ) -> Diagnostic:
        """A diagnostic attributed to this rule."""
        return Diagnostic(self.code, message, location, self.severity, hint, self.name)


class Rule(Protocol):
    """A lint rule module: ``RULE`` and ``check``.

    The module docstring is the rule's documentation, with YAML that passes
    and YAML that fails.
    """

    RULE: RuleInfo

    def check(self, ctx: LintContext) -> Iterable[Diagnostic]: ...
