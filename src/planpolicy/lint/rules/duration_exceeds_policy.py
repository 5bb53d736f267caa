"""PP507 duration-exceeds-policy: a plan type may not run longer than its lifecycle allows.

Passes (lifecycle ``maxPlanDurationDays: 180``)::

    maxDurationDays: 120

Fails::

    maxDurationDays: 365
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

if TYPE_CHECKING:
    from planpolicy.documents import Lifecycle, PlanType

RULE = RuleInfo(
    "PP507",
    "duration-exceeds-policy",
    Severity.ERROR,
    "a plan type runs longer than its lifecycle allows",
)


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    limits = {
        d.name: cast("Lifecycle", d.model).spec.max_plan_duration_days
        for d in ctx.of_kind("Lifecycle")
    }
    for doc in ctx.of_kind("PlanType"):
        spec = cast("PlanType", doc.model).spec
        limit = limits.get(spec.lifecycle)
        if limit is not None and spec.max_duration_days > limit:
            yield RULE.problem(
                f"`maxDurationDays` {spec.max_duration_days} of `{doc.name}` exceeds the limit of "
                f"{limit} days set by lifecycle `{spec.lifecycle}`",
                doc.source.location(("spec", "maxDurationDays")),
            )
