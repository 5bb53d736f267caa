"""Step scheduling rules: which step may run next, when it becomes due, whether its precondition holds.

Deterministic functions of the plan, the bundle and the facts; the
orchestrator consults them and never embeds the logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from planpolicy.facts import Facts, activation_for
from planpolicy.model import CompiledStep, PolicyBundle
from planpolicy.plan import PlanStep, RevenuePlanV1, StepStatus
from planpolicy.reasons import Reason

__all__ = ["Precondition", "StepPlanner"]


@dataclass(frozen=True)
class Precondition:
    """A step's ``when``: ``holds`` is None when it could not be evaluated (fail closed)."""

    holds: bool | None
    reason: Reason | None = None


class StepPlanner:
    """Step ordering, timing and preconditions of one bundle."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle

    def spec(self, plan: RevenuePlanV1, step: PlanStep) -> CompiledStep | None:
        """The plan type's definition of ``step`` (None for unknown types)."""
        ptype = self.bundle.plan_type(plan.plan_type)
        return ptype.steps.get(step.action_type) if ptype else None

    def due_at(
        self, plan: RevenuePlanV1, step: PlanStep, facts: Facts, activated_at: datetime
    ) -> tuple[datetime, Reason | None]:
        """When ``step`` first becomes due: the later of activation and its timing bounds."""
        spec = self.spec(plan, step)
        due = activated_at
        if spec is None:
            return due, None
        if spec.after_activation_days is not None:
            due = max(due, activated_at + timedelta(days=spec.after_activation_days))
        if spec.not_before is not None:
            try:
                result = spec.not_before.expr.evaluate(activation_for(self.bundle, plan, facts))
            except (TypeError, ValueError) as exc:  # the context cannot be given to CEL
                return due, _context_invalid(spec, step, exc)
            if not result.ok or not isinstance(result.value, datetime):
                return due, Reason(
                    "RULE_EVALUATION_ERROR",
                    f"timing `{spec.not_before.id}` could not be evaluated: "
                    f"{result.error or 'not a timestamp'}",
                    spec.not_before.ref,
                    step.step_id,
                )
            due = max(due, result.value)
        return due, None

    def precondition(self, plan: RevenuePlanV1, step: PlanStep, facts: Facts) -> Precondition:
        """Evaluate the step's ``when`` (true when it has none)."""
        spec = self.spec(plan, step)
        if spec is None or spec.when is None:
            return Precondition(True)
        try:
            result = spec.when.expr.evaluate(activation_for(self.bundle, plan, facts))
        except (TypeError, ValueError) as exc:  # the context cannot be given to CEL
            return Precondition(None, _context_invalid(spec, step, exc))
        if not result.ok or not isinstance(result.value, bool):
            error = result.error or f"expected a boolean, got `{result.value!r}`"
            return Precondition(
                None,
                Reason(
                    "RULE_EVALUATION_ERROR",
                    f"precondition `{spec.when.id}` could not be evaluated: {error}",
                    spec.when.ref,
                    step.step_id,
                    {"expression": spec.when.expr.source.strip(), "error": error},
                ),
            )
        if not result.value:
            return Precondition(
                False,
                Reason(
                    "STEP_PRECONDITION_FALSE",
                    f"`{spec.when.expr.source.strip()}` is false",
                    spec.when.ref,
                    step.step_id,
                ),
            )
        return Precondition(True)

    def needs_approval(self, plan: RevenuePlanV1, step: PlanStep) -> bool:
        """A human-touch step that no person has approved yet."""
        spec = self.spec(plan, step)
        touch = step.human_touch or (spec is not None and spec.human_touch)
        return touch and step.human_approved_by is None

    def ready(self, plan: RevenuePlanV1) -> list[PlanStep]:
        """Steps whose ordering allows them to run: not settled, not in flight, deps settled."""
        by_action = {s.action_type: s for s in plan.steps}
        out = []
        for step in plan.steps:
            if step.status not in (StepStatus.PENDING, StepStatus.FAILED):
                continue
            spec = self.spec(plan, step)
            deps = spec.after if spec else ()
            if all(by_action[d].status.is_settled for d in deps if d in by_action):
                out.append(step)
        return out


def _context_invalid(spec: CompiledStep, step: PlanStep, exc: Exception) -> Reason:
    """Fail closed when the facts cannot be turned into CEL values (the message names no value)."""
    return Reason(
        "CONTEXT_INVALID",
        f"the context cannot be given to the rules of step `{spec.action_type}`: {exc}",
        spec.ref,
        step.step_id,
    )
