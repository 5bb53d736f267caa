"""The State Evaluator: is the objective met, are all steps done, has the plan expired?

``StateEvaluator(bundle).evaluate(plan, facts, now)`` returns an
:class:`Outcome`. It is deterministic and side-effect free. A CEL error is
reported in ``errors`` and never completes a plan by accident; expiry does not
depend on CEL and still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from planpolicy.facts import Facts, activation_for, reads_plan
from planpolicy.model import CompiledPlanType, PolicyBundle
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = ["ALL_STEPS_DONE", "EXPIRED", "OBJECTIVE_MET", "Outcome", "StateEvaluator"]

OBJECTIVE_MET = "objective_met"
ALL_STEPS_DONE = "all_steps_done"
EXPIRED = "expired"


@dataclass(frozen=True)
class Outcome:
    """``status`` is ``COMPLETED``, ``EXPIRED`` or ``None`` (no change)."""

    status: str | None
    reason: str | None
    errors: tuple[Reason, ...] = ()
    met: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.status is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "met": list(self.met),
            "errors": [e.as_dict() for e in self.errors],
        }


class StateEvaluator:
    """Evaluates objective and expiry for plans of one bundle."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle

    def evaluate(self, plan: RevenuePlanV1, facts: Facts, now: datetime) -> Outcome:
        """The plan's outcome at ``now`` (``facts.now`` is replaced by ``now``; naive is UTC).

        Never raises for plan or context data: a rule that cannot be evaluated is
        reported in ``errors`` and counts as not met; expiry still applies.
        """
        if now is not facts.now:
            # new facts (and a new conversion for CEL) only for another moment
            facts = facts.at(now)
            now = facts.now
        errors: list[Reason] = []
        met: list[str] = []
        ptype = self.bundle.plan_type(plan.plan_type)
        if ptype is None:
            errors.append(
                Reason(
                    "PLAN_TYPE_UNKNOWN", f"plan type `{plan.plan_type}` is not in the policy bundle"
                )
            )
        else:
            met, complete = self._objective(plan, facts, ptype, errors)
            if complete:
                return Outcome("COMPLETED", OBJECTIVE_MET, tuple(errors), tuple(met))
            if ptype.complete_when_all_steps_done and all(s.status.is_settled for s in plan.steps):
                return Outcome("COMPLETED", ALL_STEPS_DONE, tuple(errors), tuple(met))
        if now >= plan.expires_at:
            return Outcome("EXPIRED", EXPIRED, tuple(errors), tuple(met))
        return Outcome(None, None, tuple(errors), tuple(met))

    def _objective(
        self, plan: RevenuePlanV1, facts: Facts, ptype: CompiledPlanType, errors: list[Reason]
    ) -> tuple[list[str], bool]:
        """Objective conditions met, and whether the objective as a whole is met.

        When the plan type's rules read nothing of the plan, the answer depends
        on the facts alone: it is kept with the facts (which are never changed)
        and given again for the same facts, as the same CEL values would give it.
        """
        if reads_plan(self.bundle, ptype):
            return self._evaluate_objective(plan, facts, ptype, errors)
        kept: dict[tuple[str, str], tuple[list[str], bool, list[Reason]]]
        kept = facts.__dict__.setdefault("_objectives", {})
        key = (self.bundle.digest, ptype.name)
        found = kept.get(key)
        if found is None:
            mine: list[Reason] = []
            met, complete = self._evaluate_objective(plan, facts, ptype, mine)
            found = kept[key] = (met, complete, mine)
        errors.extend(found[2])
        return list(found[0]), found[1]

    def _evaluate_objective(
        self, plan: RevenuePlanV1, facts: Facts, ptype: CompiledPlanType, errors: list[Reason]
    ) -> tuple[list[str], bool]:
        try:
            activation = activation_for(self.bundle, plan, facts)
        except (TypeError, ValueError) as exc:
            errors.append(
                Reason(
                    "CONTEXT_INVALID",
                    f"the context cannot be given to the rules: {exc}",
                    ptype.ref,
                )
            )
            return [], False
        met: list[str] = []
        for cond in ptype.objective:
            result = cond.expr.evaluate(activation)
            if not result.ok or not isinstance(result.value, bool):
                error = result.error or f"expected a boolean, got `{type(result.value).__name__}`"
                errors.append(
                    Reason(
                        "RULE_EVALUATION_ERROR",
                        f"objective `{cond.id}` could not be evaluated: {error}",
                        cond.ref,
                        details={"expression": cond.expr.source.strip(), "error": error},
                    )
                )
            elif result.value:
                met.append(cond.id)
        if ptype.objective_mode == "any":
            # One condition known to be true meets an `any` objective, whatever the others say.
            return met, bool(met)
        return met, not errors and len(met) == len(ptype.objective)
