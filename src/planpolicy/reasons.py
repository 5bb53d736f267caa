"""Reasons: why a decision came out the way it did, with stable codes.

Every reason names the rule and the document/version it came from (and its
``file:line``), and the ``step_id`` when a step caused it. Codes are part of
the public contract: policy tests and dashboards match on them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from planpolicy.model import RuleRef

__all__ = ["REASON_CODES", "Reason"]

REASON_CODES: dict[str, str] = {
    "PLAN_TYPE_UNKNOWN": "the plan's type is not in the policy bundle",
    "PLAN_TYPE_VERSION_MISMATCH": "the plan was written for another version of its plan type",
    "PLAN_NOT_ACTIVATABLE": "the plan's status does not allow activation",
    "STEP_TYPE_NOT_ALLOWED": "a step's action type is not allowed by the plan type",
    "STEP_DUPLICATED": "an action type appears twice in the plan",
    "REQUIRED_STEP_MISSING": "a step the plan type requires is missing",
    "STEP_ORDER_VIOLATION": "a step is listed before a step it must come after",
    "HUMAN_TOUCH_REQUIRED": "a step's risk requires a human-touch point",
    "STEP_PARAMETER_INVALID": "a step parameter is unknown, missing or of the wrong shape",
    "ELIGIBILITY_NOT_MET": "an eligibility condition is false",
    "RULE_EVALUATION_ERROR": "a rule could not be evaluated (fail closed)",
    "STEP_PRECONDITION_FALSE": "a step's `when` is false, so the step is skipped",
    "CONTEXT_INVALID": "a context value cannot be given to the rules (fail closed)",
    "EXPIRES_AT_NOT_IN_FUTURE": "expires_at is not after the evaluation time",
    "EXPIRES_AT_BEYOND_MAX_DURATION": "expires_at is further away than the plan type allows",
    "CONFLICT_ACTIVE_PLAN": "another plan already occupies the conflict scope",
    "AUTHORITY_ROLE_NOT_ALLOWED": "none of the actor's roles may perform the action at this risk",
    "AUTHORITY_SELF_APPROVAL": "the proposer of a plan may not approve it",
    "AUTHORITY_NOT_HUMAN": "only a person may perform the action",
}


@dataclass(frozen=True)
class Reason:
    """One reason of a decision."""

    code: str
    message: str
    rule: RuleRef | None = None
    step_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str | None:
        """``file:line:column`` of the rule, when known."""
        loc = self.rule.location if self.rule else None
        return str(loc) if loc else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (CLI, API, ledger)."""
        return {
            "code": self.code,
            "message": self.message,
            "rule": self.rule.as_dict() if self.rule else None,
            "location": self.location,
            "step_id": str(self.step_id) if self.step_id else None,
            "details": self.details,
        }
