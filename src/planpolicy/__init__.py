"""planpolicy: a rules-as-data policy engine for goal-level revenue plans.

The public API is small::

    from planpolicy import load_bundle
    bundle = load_bundle(["policies", "plan_types"])

Names are imported lazily so that ``planpolicy --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from planpolicy.authority import Actor, AuthorityDecision, check_authority
    from planpolicy.compiler import BundleError, CompileResult, compile_bundle, load_bundle
    from planpolicy.diagnostics import Diagnostic, Location, Severity
    from planpolicy.evaluator import Outcome, StateEvaluator
    from planpolicy.facts import ActivePlanRef, Facts
    from planpolicy.gate import Decision, Gate
    from planpolicy.lifecycle import (
        GuardDenied,
        InvalidTransition,
        LifecycleError,
        LifecycleMachine,
    )
    from planpolicy.model import CompiledPlanType, CompiledStep, PolicyBundle
    from planpolicy.plan import PlanStatus, PlanStep, RevenuePlanV1, StepStatus, load_plan
    from planpolicy.reasons import Reason
    from planpolicy.steps import Precondition, StepPlanner

_EXPORTS = {
    "Actor": "planpolicy.authority",
    "AuthorityDecision": "planpolicy.authority",
    "check_authority": "planpolicy.authority",
    "Outcome": "planpolicy.evaluator",
    "StateEvaluator": "planpolicy.evaluator",
    "ActivePlanRef": "planpolicy.facts",
    "Facts": "planpolicy.facts",
    "Decision": "planpolicy.gate",
    "Gate": "planpolicy.gate",
    "GuardDenied": "planpolicy.lifecycle",
    "InvalidTransition": "planpolicy.lifecycle",
    "LifecycleError": "planpolicy.lifecycle",
    "LifecycleMachine": "planpolicy.lifecycle",
    "CompiledPlanType": "planpolicy.model",
    "CompiledStep": "planpolicy.model",
    "load_plan": "planpolicy.plan",
    "Reason": "planpolicy.reasons",
    "Precondition": "planpolicy.steps",
    "StepPlanner": "planpolicy.steps",
    "BundleError": "planpolicy.compiler",
    "CompileResult": "planpolicy.compiler",
    "compile_bundle": "planpolicy.compiler",
    "load_bundle": "planpolicy.compiler",
    "Diagnostic": "planpolicy.diagnostics",
    "Location": "planpolicy.diagnostics",
    "Severity": "planpolicy.diagnostics",
    "PolicyBundle": "planpolicy.model",
    "PlanStatus": "planpolicy.plan",
    "PlanStep": "planpolicy.plan",
    "RevenuePlanV1": "planpolicy.plan",
    "StepStatus": "planpolicy.plan",
}

__all__ = [
    "ActivePlanRef",
    "Actor",
    "AuthorityDecision",
    "BundleError",
    "CompileResult",
    "CompiledPlanType",
    "CompiledStep",
    "Decision",
    "Diagnostic",
    "Facts",
    "Gate",
    "GuardDenied",
    "InvalidTransition",
    "LifecycleError",
    "LifecycleMachine",
    "Location",
    "Outcome",
    "PlanStatus",
    "PlanStep",
    "PolicyBundle",
    "Precondition",
    "Reason",
    "RevenuePlanV1",
    "Severity",
    "StateEvaluator",
    "StepPlanner",
    "StepStatus",
    "__version__",
    "check_authority",
    "compile_bundle",
    "load_bundle",
    "load_plan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'planpolicy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
