"""The rules proposer: the plan types' ``spec.proposal`` rules decide, deterministically.

For each plan type the request may propose (the goals' plan types in order,
else every plan type with proposal rules, by name), the ``when`` conditions
are evaluated; the first plan type whose conditions all hold is proposed with
its required steps, plus each optional step whose ``includeSteps`` condition
holds, and the objective, rationale and text parameters rendered from their
templates.

Fail closed: a rule or placeholder that cannot be evaluated (a missing value,
a type error) never reads as false -- that plan type is not proposed and the
reason says which rule failed and why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from planpolicy.cel import Activation
from planpolicy.facts import activation_without_plan
from planpolicy.model import CompiledCondition, CompiledPlanType, CompiledTemplate, PolicyBundle
from planpolicy.proposal import ProposalRequest, ProposerOutput
from planpolicy.reasons import Reason

__all__ = ["RulesProposer", "render_value"]


class _Unusable(Exception):
    """A rule or placeholder could not be evaluated; carries the reason."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


def render_value(value: Any) -> str:
    """A placeholder's value as text: dates without midnight times, numbers without noise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        at = value.astimezone(UTC) if value.tzinfo else value
        if (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0):
            return at.date().isoformat()
        return at.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        days = value / timedelta(days=1)
        return f"{days:g} days"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else str(value)
    return str(value)


def _short(source: str) -> str:
    return " ".join(source.split())


def _evaluate(cond: CompiledCondition, activation: Activation, ptype: CompiledPlanType) -> Any:
    result = cond.expr.evaluate(activation)
    if not result.ok or result.value is None:
        error = result.error or "the value is missing (null)"
        raise _Unusable(
            Reason(
                "RULE_EVALUATION_ERROR",
                f"`{ptype.name}`: rule `{cond.id}` could not be evaluated: {error}",
                cond.ref,
                details={"expression": _short(cond.expr.source), "error": error},
            )
        )
    return result.value


def _holds(cond: CompiledCondition, activation: Activation, ptype: CompiledPlanType) -> bool:
    value = _evaluate(cond, activation, ptype)
    if not isinstance(value, bool):
        raise _Unusable(
            Reason(
                "RULE_EVALUATION_ERROR",
                f"`{ptype.name}`: rule `{cond.id}` gave `{type(value).__name__}`, not a boolean",
                cond.ref,
            )
        )
    return value


def _render(
    template: CompiledTemplate | None, activation: Activation, ptype: CompiledPlanType
) -> str | None:
    if template is None:
        return None
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(render_value(_evaluate(part, activation, ptype)))
    return "".join(out)


class RulesProposer:
    """Proposes from the proposal rules of the bundle's plan types (offline, deterministic)."""

    @property
    def name(self) -> str:
        return "rules"

    @property
    def model_id(self) -> str | None:
        return None

    def propose(self, bundle: PolicyBundle, request: ProposalRequest) -> ProposerOutput:
        """The first plan type whose proposal rules hold; otherwise no candidate, with reasons."""
        reasons: list[Reason] = []
        considered = [p for p in request.plan_types(bundle) if p.proposal is not None]
        facts = request.facts()
        for ptype in considered:
            try:
                return self._propose(bundle, request, ptype, facts_now=facts.now)
            except _Unusable as exc:
                reasons.append(exc.reason)
        if not considered:
            reasons.append(
                Reason(
                    "PROPOSAL_NOT_APPLICABLE",
                    "no plan type the request may propose has proposal rules",
                    details={"goals": list(request.goal_plan_types())},
                )
            )
        raw = {"proposed": None, "reasons": [r.code for r in reasons]}
        return ProposerOutput(None, raw, reasons=tuple(reasons))

    def _propose(
        self,
        bundle: PolicyBundle,
        request: ProposalRequest,
        ptype: CompiledPlanType,
        *,
        facts_now: datetime,
    ) -> ProposerOutput:
        proposal = ptype.proposal
        assert proposal is not None
        try:
            activation = activation_without_plan(
                bundle, request.tenant_id, request.facts(), proposal.roots
            )
        except (TypeError, ValueError) as exc:
            raise _Unusable(
                Reason(
                    "CONTEXT_INVALID",
                    f"`{ptype.name}`: the account data cannot be given to the rules: {exc}",
                    proposal.ref,
                )
            ) from None
        for cond in proposal.when:
            if not _holds(cond, activation, ptype):
                raise _Unusable(
                    Reason(
                        "PROPOSAL_CONDITION_FALSE",
                        f"`{ptype.name}`: proposal rule `{cond.id}` is false: "
                        f"`{_short(cond.expr.source)}`",
                        cond.ref,
                    )
                )
        steps = []
        for name in ptype.step_order:
            include = proposal.include_steps.get(name)
            if not ptype.steps[name].required and (
                include is None or not _holds(include, activation, ptype)
            ):
                continue
            parameters = {
                param: _render(template, activation, ptype)
                for param, template in proposal.parameters.get(name, {}).items()
            }
            steps.append({"action_type": name, "parameters": parameters})
        held = [c.id for c in proposal.when]
        rationale = _render(proposal.rationale, activation, ptype) or (
            f"the proposal rules of `{ptype.name}` hold: " + ", ".join(f"`{i}`" for i in held)
        )
        candidate = {
            "plan_type": ptype.name,
            "objective": _render(proposal.objective, activation, ptype) or ptype.description,
            "expires_in_days": proposal.expires_in_days,
            "steps": steps,
            "rationale": rationale,
        }
        evidence = {
            "rules_held": held,
            "steps_included": [s["action_type"] for s in steps],
            "evaluated_at": facts_now.isoformat(),
        }
        return ProposerOutput(candidate, candidate, rationale, evidence=evidence)
