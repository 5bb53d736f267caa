"""Request and response bodies of the Plans API (pydantic; they are the OpenAPI schemas).

Request bodies forbid unknown fields, so a misspelled field is a field-level
422 rather than silently ignored. Every string a request carries must be valid
UTF-8 text (a lone surrogate in JSON is refused at the door, not in the store).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "IDENT_PATTERN",
    "NAME_PATTERN",
    "GateView",
    "Health",
    "LedgerEntryView",
    "LedgerView",
    "Me",
    "NewPlan",
    "NewStep",
    "OptionalReason",
    "PlanPage",
    "PlanSummary",
    "PlanTypeStep",
    "PlanTypeView",
    "PlanView",
    "ReasonView",
    "RequiredReason",
    "StepView",
]

IDENT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$"
NAME_PATTERN: Final = r"^[A-Z][A-Z0-9_]{0,127}$"


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid unicode (no lone surrogates)") from exc
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


_UTF8 = AfterValidator(_utf8)
ReasonText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), _UTF8
]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), _UTF8]
ObjectiveText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), _UTF8]
ParamText = Annotated[str, StringConstraints(max_length=2000), _UTF8]
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENT_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
ParamValue = (
    ParamText
    | Annotated[int, Field(ge=-(2**53), le=2**53)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
)


class _Request(BaseModel):
    # strict: `0` is not `false` and `"1"` is not `1`; a wrong type is a 422, not a guess.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class RequiredReason(_Request):
    """Why: required for pause, resume and abort; it goes to the ledger."""

    reason: ReasonText = Field(
        description="Why the caller does this, in words (recorded in the ledger)"
    )


class OptionalReason(_Request):
    """Why, optionally: approve, activate and step approval have a default reason."""

    reason: OptionalText = Field(
        default="", description="Why the caller does this (recorded in the ledger)"
    )


class NewStep(_Request):
    """A step of a proposed plan."""

    action_type: Name = Field(description="An action type the plan type allows")
    parameters: dict[Ident, ParamValue] = Field(
        default_factory=dict, max_length=50, description="Action parameters"
    )
    human_touch: bool | None = Field(
        default=None,
        description="Whether a person approves the step before dispatch "
        "(default: as the plan type declares)",
    )


class NewPlan(_Request):
    """A proposed plan: stored as a DRAFT of the caller's tenant, proposed by the caller."""

    account_id: Ident = Field(description="The customer account")
    plan_type: Name = Field(description="A plan type of the policy bundle")
    plan_type_version: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Default: the bundle's version"
    )
    objective: ObjectiveText = Field(default="", description="The goal, in words")
    owner: Ident | None = Field(default=None, description="Accountable user (default: caller)")
    expires_at: AwareDatetime | None = Field(
        default=None,
        strict=False,  # an RFC 3339 string in JSON; strict would accept datetime objects only
        description="Hard end (default: now + the plan type's maximum duration)",
    )
    steps: list[NewStep] = Field(min_length=1, max_length=100, description="Ordered steps")
    reason: OptionalText = Field(
        default="", description="Why the plan is proposed (recorded in the ledger)"
    )


class ReasonView(BaseModel):
    """One reason of a policy decision."""

    code: str = Field(description="Stable reason code, e.g. `ELIGIBILITY_NOT_MET`")
    message: str
    rule: dict[str, Any] | None = Field(default=None, description="The rule and its document")
    location: str | None = Field(default=None, description="`file:line:column` of the rule")
    step_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class GateView(BaseModel):
    """A decision of the policy gate: may the plan be ACTIVE, and exactly why not."""

    can_activate: bool
    reasons: list[ReasonView]
    plan_risk: str | None = None
    bundle_digest: str | None = None
    plan_type_version: int | None = None
    decided_at: AwareDatetime | None = Field(
        default=None, description="When the decision was taken"
    )
    ledger_seq: int | None = Field(
        default=None, description="The ledger entry that records it (none for a dry run)"
    )


class StepView(BaseModel):
    """A step with its execution state."""

    step_id: uuid.UUID
    action_type: str
    status: str
    attempts: int
    retry_limit: int | None = Field(default=None, description="Attempts allowed by the plan type")
    risk: str | None = Field(default=None, description="The step's risk level")
    human_touch: bool
    human_approved_by: str | None = None
    human_approved_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    last_error: str | None = None
    skip_reason: str | None = None
    completed_at: AwareDatetime | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class PlanView(BaseModel):
    """A plan with its derived risk, latest gate decision and what the caller may do."""

    plan_id: str
    tenant_id: str
    account_id: str
    plan_type: str
    plan_type_version: int
    status: str
    objective: str
    owner: str
    created_by: str
    approved_by: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    approved_at: AwareDatetime | None = None
    activated_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    expires_at: AwareDatetime
    completion_reason: str | None = None
    next_due_at: AwareDatetime | None = None
    bundle_digest: str | None = None
    version: int = Field(description='Optimistic-concurrency version; the ETag is `"<version>"`')
    risk: str | None = Field(description="The highest risk of the plan's steps")
    steps: list[StepView]
    allowed_triggers: list[str] = Field(
        description="Triggers the lifecycle allows from the plan's state"
    )
    permitted: list[str] = Field(
        description="Of those, the ones the caller's authority covers (the gate decides later)"
    )
    latest_gate: GateView | None = Field(
        default=None, description="The newest gate decision recorded in the ledger"
    )


class PlanSummary(BaseModel):
    """A plan as the list shows it."""

    plan_id: str
    account_id: str
    plan_type: str
    status: str
    risk: str | None
    owner: str
    expires_at: AwareDatetime
    updated_at: AwareDatetime
    next_due_at: AwareDatetime | None = None
    version: int
    steps_total: int
    steps_settled: int = Field(description="Steps succeeded or skipped")


class PlanPage(BaseModel):
    """One page of plans; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[PlanSummary]
    next_cursor: str | None = Field(description="None on the last page")


class LedgerEntryView(BaseModel):
    """One ledger entry: who did what, when, why, under which policy."""

    seq: int
    time: AwareDatetime
    actor: str
    event: str
    reason: str
    step_id: uuid.UUID | None = None
    attempt: int | None = None
    plan_version: int
    bundle_digest: str | None = None
    document_versions: dict[str, int] = Field(default_factory=dict)
    evidence: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


class LedgerView(BaseModel):
    """A plan's ledger, oldest first, and the entry that stopped it, if it stopped."""

    plan_id: str
    status: str
    entries: list[LedgerEntryView]
    next_after: int | None = Field(description="Pass as `after` for the next page; None at the end")
    why_stopped: LedgerEntryView | None = Field(
        description="For a PAUSED or ended plan (or a rejected activation): the entry that says why"
    )


class Me(BaseModel):
    """The authenticated caller."""

    tenant_id: str
    user_id: str
    roles: list[str]
    human: bool


class PlanTypeStep(BaseModel):
    """A step a plan type allows."""

    action_type: str
    description: str | None = None
    risk: str
    human_touch: bool
    required: bool
    after: list[str]
    retry_limit: int


class PlanTypeView(BaseModel):
    """A plan type of the loaded policy bundle."""

    name: str
    version: int
    description: str
    lifecycle: str
    max_duration_days: float
    steps: list[PlanTypeStep]


class Health(BaseModel):
    """Liveness, and the policy bundle the API decides with."""

    status: str
    bundle_digest: str
