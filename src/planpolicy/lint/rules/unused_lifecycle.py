"""PP504 unused-lifecycle: a Lifecycle document that no plan type uses.

Passes: every Lifecycle is named by some PlanType's ``spec.lifecycle``.

Fails: ``metadata.name: legacy`` while every plan type says ``lifecycle: default``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

if TYPE_CHECKING:
    from planpolicy.documents import PlanType

RULE = RuleInfo("PP504", "unused-lifecycle", Severity.WARNING, "a lifecycle no plan type uses")


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    used = {cast("PlanType", d.model).spec.lifecycle for d in ctx.of_kind("PlanType")}
    for doc in ctx.of_kind("Lifecycle"):
        if doc.name not in used:
            yield RULE.problem(
                f"lifecycle `{doc.name}` is not used by any plan type",
                doc.source.location(("metadata", "name")),
            )
