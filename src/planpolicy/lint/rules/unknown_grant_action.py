"""PP506 unknown-grant-action: an authority grant for an action no lifecycle has.

Grant actions are lifecycle triggers guarded by ``authority``, or
``approve_step`` (approval of a human-touch step).

Passes: ``action: pause`` with a lifecycle trigger ``pause`` guarded by authority.

Fails: ``action: pasue``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from planpolicy.diagnostics import Diagnostic, Severity
from planpolicy.lint.base import LintContext, RuleInfo

if TYPE_CHECKING:
    from planpolicy.documents import AuthorityPolicy, Lifecycle

RULE = RuleInfo(
    "PP506", "unknown-grant-action", Severity.WARNING, "a grant names an unknown action"
)

STEP_APPROVAL = "approve_step"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    actions = {STEP_APPROVAL}
    for doc in ctx.of_kind("Lifecycle"):
        transitions = cast("Lifecycle", doc.model).spec.transitions
        actions |= {t.trigger for t in transitions if "authority" in t.guards}
    for doc in ctx.of_kind("AuthorityPolicy"):
        spec = cast("AuthorityPolicy", doc.model).spec
        named: list[tuple[tuple[str | int, ...], str]] = [
            (("spec", "grants", i, "action"), g.action) for i, g in enumerate(spec.grants)
        ]
        named += [(("spec", "ownerMay", i), a) for i, a in enumerate(spec.owner_may)]
        for path, action in named:
            if action not in actions:
                close = difflib.get_close_matches(action, sorted(actions), n=1)
                yield RULE.problem(
                    f"`{action}` is not an authority-guarded action of any lifecycle",
                    doc.source.location(path),
                    hint=f"did you mean `{close[0]}`?" if close else None,
                )
