"""PP505 ungoverned-transition: every way into the active state passes the gate, every way out of the initial state passes authority.

Plans are proposals until a human approves them, and they activate only when
the policy gate says so. A transition that leaves the initial state without the
``authority`` guard would let anything approve a plan; a transition into
``ACTIVE`` without the ``gate`` guard would skip the policy gate.

Passes::

    - {trigger: approve, from: [DRAFT], to: APPROVED, guards: [authority]}
    - {trigger: activate, from: [APPROVED], to: ACTIVE, guards: [gate]}

Fails::

    - {trigger: approve, from: [DRAFT], to: APPROVED}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

if TYPE_CHECKING:
    from planpolicy.documents import Lifecycle

RULE = RuleInfo(
    "PP505", "ungoverned-transition", Severity.ERROR, "a transition bypasses the gate or authority"
)

ACTIVE_STATE = "ACTIVE"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for doc in ctx.of_kind("Lifecycle"):
        spec = cast("Lifecycle", doc.model).spec
        terminal = set(spec.terminal)
        for i, tr in enumerate(spec.transitions):
            where = doc.source.location(("spec", "transitions", i, "trigger"))
            if tr.dest == ACTIVE_STATE and "gate" not in tr.guards:
                yield RULE.problem(
                    f"transition `{tr.trigger}` enters `{ACTIVE_STATE}` without the `gate` guard",
                    where,
                    hint="add `gate` to its guards: plans activate only when the gate allows",
                )
            if (
                spec.initial in tr.source
                and tr.dest not in terminal
                and "authority" not in tr.guards
            ):
                yield RULE.problem(
                    f"transition `{tr.trigger}` leaves `{spec.initial}` without the `authority` guard",
                    where,
                    hint="add `authority`: a proposal must be approved by a person allowed to",
                )
