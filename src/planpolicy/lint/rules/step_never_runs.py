"""PP503 step-never-runs: a step whose ``when`` precondition is always false.

Passes::

    when: signals.open_p1_tickets > 0

Fails::

    when: "1 > 2"
"""

from __future__ import annotations

from collections.abc import Iterator

from planpolicy.cel import make_activation
from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

RULE = RuleInfo(
    "PP503", "step-never-runs", Severity.WARNING, "a step whose precondition is always false"
)


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    empty = make_activation({})
    for ptype in ctx.plan_types.values():
        for step in ptype.steps.values():
            when = step.when
            if when is None or not when.expr.is_constant:
                continue
            result = when.expr.evaluate(empty)
            if result.ok and result.value is False:
                yield RULE.problem(
                    f"step `{step.action_type}` of `{ptype.name}` never runs: its `when` is always false",
                    when.ref.location,
                    hint="remove the step or fix the condition",
                )
