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
    from planpolicy.compiler import BundleError, CompileResult, compile_bundle, load_bundle
    from planpolicy.diagnostics import Diagnostic, Location, Severity
    from planpolicy.model import PolicyBundle
    from planpolicy.plan import PlanStatus, PlanStep, RevenuePlanV1, StepStatus

_EXPORTS = {
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
    "BundleError",
    "CompileResult",
    "Diagnostic",
    "Location",
    "PlanStatus",
    "PlanStep",
    "PolicyBundle",
    "RevenuePlanV1",
    "Severity",
    "StepStatus",
    "__version__",
    "compile_bundle",
    "load_bundle",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'planpolicy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
