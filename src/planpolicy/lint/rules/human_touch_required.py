"""PP501 human-touch-required: a step at or above the RiskPolicy's human-touch level must be a human-touch point.

The gate denies every plan that includes such a step, so the plan type is
unusable as written.

Passes (with ``humanTouchFrom: HIGH``)::

    - actionType: ESCALATE_SUPPORT_RISK
      risk: HIGH
      humanTouch: true

Fails::

    - actionType: ESCALATE_SUPPORT_RISK
      risk: HIGH
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

if TYPE_CHECKING:
    from planpolicy.documents import PlanType, RiskPolicy

RULE = RuleInfo(
    "PP501", "human-touch-required", Severity.ERROR, "a high-risk step must be a human-touch point"
)


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    risk = next((cast("RiskPolicy", d.model) for d in ctx.of_kind("RiskPolicy")), None)
    if risk is None:
        return
    levels = [lvl.name for lvl in risk.spec.levels]
    threshold = risk.spec.human_touch_from
    if threshold not in levels:
        return
    for doc in ctx.of_kind("PlanType"):
        for i, step in enumerate(cast("PlanType", doc.model).spec.steps):
            if step.risk not in levels or step.human_touch:
                continue
            if levels.index(step.risk) >= levels.index(threshold):
                yield RULE.problem(
                    f"step `{step.action_type}` has risk `{step.risk}` but is not a human-touch point",
                    doc.source.location(("spec", "steps", i, "risk")),
                    hint=f"add `humanTouch: true` (the RiskPolicy requires it from `{threshold}`)",
                )
