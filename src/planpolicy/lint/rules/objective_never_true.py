"""PP502 objective-never-true: an objective that can never be met.

An objective condition that references no context and evaluates to false
(``false``, ``1 > 2``) makes ``objective_met`` impossible; when every
condition of an ``all`` objective or every condition of an ``any`` objective
is like that, the plan can only expire or be aborted.

Passes::

    objective:
      conditions:
        - id: renewed
          expr: account.renewal.status == "RENEWED"

Fails::

    objective:
      conditions:
        - id: renewed
          expr: "false"
"""

from __future__ import annotations

from collections.abc import Iterator

from planpolicy.cel import make_activation
from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

RULE = RuleInfo("PP502", "objective-never-true", Severity.ERROR, "the objective can never be met")


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    empty = make_activation({})
    for ptype in ctx.plan_types.values():
        never = []
        for cond in ptype.objective:
            if cond.expr.is_constant:
                result = cond.expr.evaluate(empty)
                if result.ok and result.value is False:
                    never.append(cond)
        impossible = (
            len(never) == len(ptype.objective) if ptype.objective_mode == "any" else bool(never)
        )
        if impossible:
            for cond in never:
                yield RULE.problem(
                    f"objective condition `{cond.id}` of `{ptype.name}` is always false",
                    cond.ref.location,
                    hint="the plan could only expire or be aborted",
                )
