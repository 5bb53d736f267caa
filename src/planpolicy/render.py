"""How gate decisions and their traces look to people (text) and tools (JSON).

Each reason is printed like a diagnostic, led by the location of the rule
that produced it (``file:line:column: CODE: message``), followed by the rule's
document and version and the step it is about. The explain trace lists every
rule that ran, its result and the values it read.
"""

from __future__ import annotations

import json
from typing import Any

from planpolicy.gate import Decision, RuleTrace
from planpolicy.model import PolicyBundle
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = ["decision_json", "decision_text"]


def _step_names(plan: RevenuePlanV1) -> dict[str, str]:
    return {str(s.step_id): s.action_type for s in plan.steps}


def _reason_lines(reason: Reason, steps: dict[str, str]) -> list[str]:
    where = reason.location or "plan"
    lines = [f"{where}: {reason.code}: {reason.message}"]
    if reason.rule is not None:
        ref = reason.rule
        lines.append(f"    rule: {ref.kind} `{ref.document}` v{ref.version}, `{ref.rule}`")
    if reason.step_id is not None:
        step = str(reason.step_id)
        lines.append(f"    step: `{steps.get(step, '?')}` ({step})")
    return lines


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _trace_lines(trace: tuple[RuleTrace, ...]) -> list[str]:
    lines = ["", "rules evaluated:"]
    width = max((len(t.rule) for t in trace), default=0)
    for t in trace:
        loc = t.ref.location if t.ref else None
        where = f"  {loc}" if loc else ""
        kind = f"({t.kind})"
        lines.append(f"  {t.result:<7} {t.rule:<{width}}  {kind:<13}{where}")
        lines.extend(f"            {name} = {_show(value)}" for name, value in t.inputs.items())
        if t.detail:
            lines.append(f"            error: {t.detail}")
    return lines


def decision_text(
    plan: RevenuePlanV1, decision: Decision, bundle: PolicyBundle, *, explain: bool = False
) -> str:
    """The decision for people: a header, every reason with its location, the trace."""
    version = decision.plan_type_version
    type_text = f"{plan.plan_type} v{version}" if version is not None else plan.plan_type
    count = len(decision.reasons)
    verdict = (
        "can activate"
        if decision.can_activate
        else f"cannot activate ({count} reason{'s' if count != 1 else ''})"
    )
    lines = [
        f"plan `{plan.plan_id}` ({type_text}, status {plan.status}) "
        f"for account `{plan.account_id}`, tenant `{plan.tenant_id}`",
        f"decision: {verdict}",
        f"plan risk: {decision.plan_risk or 'unknown'}",
        f"bundle: {bundle.digest}",
    ]
    if decision.reasons:
        lines.append("")
        steps = _step_names(plan)
        for reason in decision.reasons:
            lines.extend(_reason_lines(reason, steps))
    if explain:
        lines.extend(_trace_lines(decision.trace))
    return "\n".join(lines) + "\n"


def decision_json(plan: RevenuePlanV1, decision: Decision, *, explain: bool = False) -> str:
    """The decision for tools; each reason also names its step's action type."""
    doc = decision.as_dict(explain=explain)
    steps = _step_names(plan)
    for reason in doc["reasons"]:
        reason["step"] = steps.get(reason["step_id"]) if reason["step_id"] else None
    out = {
        "plan": {
            "plan_id": plan.plan_id,
            "plan_type": plan.plan_type,
            "plan_type_version": plan.plan_type_version,
            "status": plan.status,
            "tenant_id": plan.tenant_id,
            "account_id": plan.account_id,
        },
        "decision": doc,
    }
    return json.dumps(out, indent=2, default=str) + "\n"
