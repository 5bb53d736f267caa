"""``planpolicy lint``: compile errors plus lint rules, as located diagnostics.

Usage from Python::

    report = run_lint(["policies", "plan_types"])
    report.exit_code(strict=False)  # 0 clean, 1 errors (warnings too with strict)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from planpolicy.compiler import compile_bundle
from planpolicy.diagnostics import DEFAULT_LIMIT, Diagnostic, DiagnosticSink, Severity
from planpolicy.lint.base import LintContext
from planpolicy.lint.registry import RULES

__all__ = ["LintReport", "run_lint"]


@dataclass(frozen=True)
class LintReport:
    """Every diagnostic of a run, sorted, plus what was checked."""

    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...]
    dropped: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity is Severity.WARNING)

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when clean, 1 on errors (or on warnings when ``strict``)."""
        if self.errors or (strict and self.warnings):
            return 1
        return 0


def run_lint(
    paths: Sequence[str | Path],
    *,
    base: str | None = None,
    limit: int = DEFAULT_LIMIT,
    jobs: int = 1,
    check_jobs: int = 1,
) -> LintReport:
    """Compile ``paths``, run every lint rule, and (with ``base``) the version check.

    ``jobs`` and ``check_jobs`` are the worker settings of :func:`compile_bundle`.
    """
    result = compile_bundle(paths, limit=limit, jobs=jobs, check_jobs=check_jobs)
    sink = DiagnosticSink(limit=limit)
    sink.extend(result.diagnostics)
    ctx = LintContext(result.documents, result.plan_types, result.bundle)
    for rule in RULES:
        sink.extend(rule.check(ctx))
    if base is not None:
        from planpolicy.lint.versioning import check_versions

        sink.extend(check_versions(result.documents, base))
    files = tuple(sorted({d.source.path for d in result.documents}))
    return LintReport(tuple(sink.sorted()), files, sink.dropped + result.dropped)
