"""The policy documents as authors write them: one pydantic model per kind.

These models are the single source of truth for the JSON Schemas in
``schemas/`` and for the package's document shapes, through which the
compiler reads documents without building these models (see
:mod:`planpolicy.schemagen` and :mod:`planpolicy.docrecords`). They describe *shape* only;
cross-document rules (references, ordering, reachability, CEL types) are the
compiler's job, where they can be reported with locations.

Every document has the same envelope::

    apiVersion: planpolicy/v1
    kind: PlanType
    metadata: {name: RENEWAL_DEFENSE, version: 3, description: ...}
    spec: {...}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from planpolicy.docrecords import API_VERSION

__all__ = [
    "API_VERSION",
    "DOCUMENT_MODELS",
    "AuthorityGrant",
    "AuthorityPolicy",
    "AuthorityPolicySpec",
    "Condition",
    "ConflictPolicy",
    "ConflictPolicySpec",
    "ContextExtension",
    "ContextExtensionSpec",
    "Lifecycle",
    "LifecycleSpec",
    "LifecycleState",
    "LifecycleTransition",
    "Metadata",
    "Objective",
    "ParameterSpec",
    "PlanType",
    "PlanTypeSpec",
    "ProposalSpec",
    "RetryPolicy",
    "RiskLevel",
    "RiskPolicy",
    "RiskPolicySpec",
    "StepSpec",
    "StepTiming",
]

Name = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$",
        description="An identifier: a letter, then letters, digits, `_`, `.` or `-`",
    ),
]
UpperName = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][A-Z0-9_]{0,127}$",
        description="An UPPER_SNAKE_CASE identifier",
    ),
]
CelSource = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4000,
        description="A CEL expression, type-checked against the evaluation context",
    ),
]
Text = Annotated[str, Field(max_length=2000)]
Template = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        description="Text with `${...}` placeholders, each a CEL expression over the context, "
        "e.g. `Renew ${account.name} before ${account.renewal_date}`",
    ),
]


class _Model(BaseModel):
    """Base: unknown fields are errors, camelCase in YAML, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class Metadata(_Model):
    """Identity and version of a document."""

    name: Name = Field(description="Unique name of the document within its kind")
    version: int = Field(
        ge=1,
        le=1_000_000,
        description="Integer version; bump it on every change that alters behaviour",
    )
    description: Text = Field(description="What this document is for, in one or two sentences")
    labels: dict[Name, Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict, description="Free-form labels for tooling"
    )


class Condition(_Model):
    """A named CEL condition; it must evaluate to a boolean."""

    id: Name = Field(description="Stable rule id, quoted in decisions and reasons")
    description: Text | None = Field(default=None, description="Why this condition exists")
    expr: CelSource = Field(description="CEL expression that must be true")


class RetryPolicy(_Model):
    """How often a failed step is retried and what happens when retries run out."""

    limit: int = Field(
        default=3, ge=1, le=20, description="Attempts allowed for the step, the first included"
    )
    backoff_minutes: int = Field(
        default=60,
        ge=0,
        le=43_200,
        description="Wait after a definite failure before the next attempt",
    )
    backoff_multiplier: float = Field(
        default=2.0, ge=1.0, le=10.0, description="Each further wait is multiplied by this"
    )
    on_exhausted: Literal["pause", "skip", "abort"] = Field(
        default="pause",
        description="Adaptation when the retry limit is reached: pause the plan, skip the step, or abort the plan",
    )


class StepTiming(_Model):
    """When a step becomes due. Both bounds may be given; the later one wins."""

    after_activation_days: int | None = Field(
        default=None, ge=0, le=365, description="Not before this many days after activation"
    )
    not_before: CelSource | None = Field(
        default=None,
        description="CEL expression giving a timestamp before which the step must not run, "
        'e.g. `account.renewal_date - duration("1440h")` for 60 days before renewal',
    )


class ParameterSpec(_Model):
    """The shape of one action parameter a step may carry."""

    type: Literal["string", "integer", "number", "boolean"] = Field(description="Value type")
    required: bool = Field(default=False, description="Whether every plan must set it")
    max_length: int | None = Field(default=None, ge=1, le=10_000, description="For strings")
    description: Text | None = None


class StepSpec(_Model):
    """An allowed step of a plan type: one action type of the execution service."""

    action_type: UpperName = Field(
        description="Action type executed by the action-execution service"
    )
    description: Text | None = None
    risk: Name = Field(description="Risk level of the step, a level of the RiskPolicy")
    human_touch: bool = Field(
        default=False, description="A human must approve this step before it is dispatched"
    )
    required: bool = Field(default=False, description="Every plan of this type must include it")
    after: list[UpperName] = Field(
        default_factory=list,
        description="Steps (action types) that must be done or skipped before this one",
    )
    when: CelSource | None = Field(
        default=None,
        description="CEL precondition; when false at dispatch time the step is skipped",
    )
    timing: StepTiming = Field(default_factory=StepTiming, description="When the step becomes due")
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retry limit and adaptation"
    )
    parameters: dict[Name, ParameterSpec] = Field(
        default_factory=dict, description="Parameters the step's action accepts"
    )


class Objective(_Model):
    """What it means for the plan to have succeeded."""

    mode: Literal["any", "all"] = Field(
        default="any", description="Whether any or all conditions must hold"
    )
    conditions: list[Condition] = Field(
        min_length=1, description="CEL conditions over the evaluation context"
    )


class ProposalSpec(_Model):
    """When and how the rules proposer drafts a plan of this type (always as a DRAFT).

    Proposal rules see `account`, `signals`, `tenant` and `now` (there is no
    `plan` yet). Required steps are always included; `includeSteps` adds optional
    ones.
    """

    when: list[Condition] = Field(
        min_length=1,
        max_length=50,
        description="CEL conditions that must all hold for the rules proposer to propose this plan type",
    )
    include_steps: dict[UpperName, CelSource] = Field(
        default_factory=dict,
        description="Optional steps (by action type) to include, each with a CEL condition; "
        "required steps are always included",
    )
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=730,
        description="`expires_at` of a proposed plan, in days from the proposal "
        "(default: `maxDurationDays`; never more)",
    )
    objective: Template | None = Field(default=None, description="The proposed plan's objective")
    rationale: Template | None = Field(
        default=None, description="Why the plan is proposed, recorded in the ledger"
    )
    parameters: dict[UpperName, dict[Name, Template]] = Field(
        default_factory=dict,
        description="Per step (action type), values of its text parameters, as templates",
    )


class PlanTypeSpec(_Model):
    """What a plan type allows and when it is done."""

    lifecycle: Name = Field(default="default", description="Name of the Lifecycle document")
    max_duration_days: int = Field(
        ge=1, le=730, description="Upper bound of `expires_at - activated_at`, in days"
    )
    complete_when_all_steps_done: bool = Field(
        default=True,
        description="Complete the plan (all_steps_done) when every step is done or skipped",
    )
    eligibility: list[Condition] = Field(
        default_factory=list, description="CEL conditions that must all hold for activation"
    )
    objective: Objective = Field(description="Objective conditions; met means COMPLETED")
    steps: list[StepSpec] = Field(min_length=1, max_length=100, description="Allowed steps")
    proposal: ProposalSpec | None = Field(
        default=None,
        description="Proposal rules: when the rules proposer drafts a plan of this type",
    )


class PlanType(_Model):
    """A plan type: allowed steps, ordering, eligibility, objective, duration."""

    api_version: Literal["planpolicy/v1"] = Field(description="Document format version")
    kind: Literal["PlanType"]
    metadata: Metadata
    spec: PlanTypeSpec


class LifecycleState(_Model):
    """A state of the plan lifecycle."""

    name: UpperName
    description: Text | None = None


class LifecycleTransition(_Model):
    """A named trigger that moves a plan between states, with optional guards."""

    trigger: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="Trigger name, e.g. `approve`, `activate`, `pause`"
    )
    source: list[UpperName] = Field(
        alias="from", min_length=1, description="States the trigger may fire from"
    )
    dest: UpperName = Field(alias="to", description="State the trigger moves to")
    guards: list[Literal["gate", "authority"]] = Field(
        default_factory=list,
        description="`gate`: the Policy Gate must allow activation; "
        "`authority`: the actor's role must be allowed by the AuthorityPolicy",
    )
    description: Text | None = None


class LifecycleSpec(_Model):
    """The plan lifecycle as a state machine."""

    states: list[LifecycleState] = Field(min_length=2, description="All states")
    initial: UpperName = Field(description="State of a new plan")
    terminal: list[UpperName] = Field(min_length=1, description="States a plan never leaves")
    transitions: list[LifecycleTransition] = Field(min_length=1)
    max_plan_duration_days: int = Field(
        default=365, ge=1, le=3650, description="No plan type may run longer than this"
    )


class Lifecycle(_Model):
    """A Lifecycle document."""

    api_version: Literal["planpolicy/v1"]
    kind: Literal["Lifecycle"]
    metadata: Metadata
    spec: LifecycleSpec


class RiskLevel(_Model):
    """One risk level."""

    name: UpperName
    description: Text | None = None


class RiskPolicySpec(_Model):
    """Ordered risk levels and how a plan's risk is derived."""

    levels: list[RiskLevel] = Field(min_length=1, description="Risk levels, lowest first")
    accumulation: Literal["max"] = Field(
        default="max", description="A plan's risk is the highest risk of its steps"
    )
    human_touch_from: UpperName = Field(
        description="Steps at or above this level must be human-touch points"
    )


class RiskPolicy(_Model):
    """A RiskPolicy document."""

    api_version: Literal["planpolicy/v1"]
    kind: Literal["RiskPolicy"]
    metadata: Metadata
    spec: RiskPolicySpec


class AuthorityGrant(_Model):
    """Roles that may perform an action on plans up to a risk level."""

    action: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="A lifecycle trigger guarded by `authority`, or `approve_step`"
    )
    roles: list[Name] = Field(min_length=1)
    max_risk: UpperName | None = Field(
        default=None, description="Highest plan risk this grant covers; unset means any risk"
    )


class AuthorityPolicySpec(_Model):
    """Who may do what to a plan."""

    grants: list[AuthorityGrant] = Field(min_length=1)
    owner_may: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=list, description="Actions the plan's owner may perform whatever their role"
    )
    proposer_may_approve: bool = Field(
        default=False, description="Whether the author of a DRAFT may approve it"
    )


class AuthorityPolicy(_Model):
    """An AuthorityPolicy document."""

    api_version: Literal["planpolicy/v1"]
    kind: Literal["AuthorityPolicy"]
    metadata: Metadata
    spec: AuthorityPolicySpec


class ConflictPolicySpec(_Model):
    """The conflict invariant: at most one occupying plan per scope."""

    scope: list[Literal["tenant_id", "account_id", "plan_type"]] = Field(
        min_length=1,
        description="Fields that together identify a conflict (tenant_id is always included)",
    )
    occupying_states: list[UpperName] = Field(
        default_factory=lambda: ["ACTIVE"], description="States that hold the scope"
    )
    on_violation: Literal["reject"] = Field(
        default="reject", description="What happens to the second plan: rejected, never queued"
    )


class ConflictPolicy(_Model):
    """A ConflictPolicy document."""

    api_version: Literal["planpolicy/v1"]
    kind: Literal["ConflictPolicy"]
    metadata: Metadata
    spec: ConflictPolicySpec


class ContextExtensionSpec(_Model):
    """Extra fields of the evaluation context, as JSON Schema fragments per root."""

    properties: dict[Name, dict[str, Any]] = Field(
        description="Per root variable (`account`, `signals`, ... or a new one), a JSON Schema "
        "object fragment whose properties are merged into the base context"
    )


class ContextExtension(_Model):
    """A ContextExtension document: lets authors declare more context fields."""

    api_version: Literal["planpolicy/v1"]
    kind: Literal["ContextExtension"]
    metadata: Metadata
    spec: ContextExtensionSpec


DOCUMENT_MODELS: dict[str, type[_Model]] = {
    "PlanType": PlanType,
    "Lifecycle": Lifecycle,
    "RiskPolicy": RiskPolicy,
    "AuthorityPolicy": AuthorityPolicy,
    "ConflictPolicy": ConflictPolicy,
    "ContextExtension": ContextExtension,
}
