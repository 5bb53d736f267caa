"""The explicit list of lint rules, in the order they run."""

from __future__ import annotations

from planpolicy.lint.base import Rule
from planpolicy.lint.rules import (
    duration_exceeds_policy,
    human_touch_required,
    objective_never_true,
    step_never_runs,
    ungoverned_transition,
    unknown_grant_action,
    unused_lifecycle,
)

__all__ = ["RULES"]

RULES: tuple[Rule, ...] = (
    human_touch_required,
    objective_never_true,
    step_never_runs,
    unused_lifecycle,
    ungoverned_transition,
    unknown_grant_action,
    duration_exceeds_policy,
)
