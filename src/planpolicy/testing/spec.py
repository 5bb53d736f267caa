"""The policy test file format: YAML cases that pin what the policies decide.

A file holds named plans and contexts and a list of cases. A **gate case**
evaluates a plan in a context and expects ``can_activate`` and the exact set
of reason codes. A **transition case** fires a lifecycle trigger on a plan as
an actor and expects it to be allowed (and where it leads) or refused (and
why). Cases start from a named plan or context and may change it with a JSON
merge patch (RFC 7386: mappings merge, ``null`` deletes, lists replace)::

    apiVersion: planpolicy/v1
    kind: PolicyTest
    metadata: {name: renewal_defense, description: RENEWAL_DEFENSE decisions}
    plans:
      eligible: {plan_id: p1, tenant_id: t1, ...}
    contexts:
      acme: {now: "2025-03-01T09:00:00Z", account: {...}, signals: {...}}
    cases:
      - name: an eligible plan activates
        plan: eligible
        context: acme
        expect: {can_activate: true}
      - name: a manager may not approve a HIGH-risk plan
        plan: eligible
        plan_patch: {status: DRAFT}
        transition: {trigger: approve, actor: {user_id: mia, roles: [revenue_manager]}}
        expect: {allowed: false, guard: authority, reasons: [AUTHORITY_ROLE_NOT_ALLOWED]}

The JSON Schema is generated into ``schemas/policy_test.v1.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "ActorSpec",
    "Case",
    "GateCase",
    "GateExpectation",
    "PolicyTestFile",
    "ReasonExpectation",
    "TransitionCase",
    "TransitionExpectation",
    "TriggerSpec",
]

Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReasonExpectation(_Spec):
    """A reason that must be present, optionally about a given step or rule."""

    code: str = Field(description="Reason code, e.g. `HUMAN_TOUCH_REQUIRED`")
    step: str | None = Field(
        default=None, description="Action type of the step the reason must be about"
    )
    rule: str | None = Field(default=None, description="Rule id the reason must come from")


ReasonItem = Annotated[
    str | ReasonExpectation,
    Field(description="A reason code, or a code with the step or rule it must be about"),
]


class ActorSpec(_Spec):
    """Who fires the trigger."""

    user_id: Name = Field(description="User id; compared with the plan's owner and proposer")
    roles: list[str] = Field(
        default_factory=list, description="Roles, as the AuthorityPolicy names them"
    )
    human: bool = Field(default=True, description="False for a system actor (never approves)")


class TriggerSpec(_Spec):
    """The lifecycle trigger a transition case fires."""

    trigger: str = Field(description="Trigger of the plan type's Lifecycle, e.g. `approve`")
    actor: ActorSpec | None = Field(
        default=None, description="Needed when the transition is guarded by `authority`"
    )


class GateExpectation(_Spec):
    """What the policy gate must decide."""

    can_activate: bool = Field(description="The expected decision")
    reasons: list[ReasonItem] = Field(
        default_factory=list, description="Exactly the set of reason codes expected"
    )
    plan_risk: str | None = Field(default=None, description="Expected plan risk, when given")


class TransitionExpectation(_Spec):
    """Whether the transition is allowed, where it leads, or why it is refused."""

    allowed: bool = Field(description="Whether the trigger may fire")
    to: str | None = Field(default=None, description="Expected new state when allowed")
    error: Literal["invalid_transition", "guard_denied"] | None = Field(
        default=None, description="Expected kind of refusal"
    )
    guard: Literal["gate", "authority"] | None = Field(
        default=None, description="The guard expected to refuse"
    )
    reasons: list[ReasonItem] | None = Field(
        default=None, description="Exactly the set of reason codes of the refusal, when given"
    )


class _CaseBase(_Spec):
    name: Name = Field(description="Unique within the file; shown in reports")
    description: str | None = None
    plan: str | dict[str, Any] = Field(
        description="Name of a plan under `plans`, or a whole plan (RevenuePlanV1)"
    )
    plan_patch: dict[str, Any] = Field(
        default_factory=dict, description="JSON merge patch applied to the plan"
    )
    context: str | dict[str, Any] | None = Field(
        default=None, description="Name of a context under `contexts`, or a whole context"
    )
    context_patch: dict[str, Any] = Field(
        default_factory=dict, description="JSON merge patch applied to the context"
    )


class GateCase(_CaseBase):
    """Evaluate the plan with the policy gate."""

    expect: GateExpectation


class TransitionCase(_CaseBase):
    """Fire a lifecycle trigger on the plan (its current `status`)."""

    transition: TriggerSpec
    expect: TransitionExpectation


def _case_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "transition" if "transition" in value else "gate"
    return "transition" if getattr(value, "transition", None) is not None else "gate"


Case = Annotated[
    Annotated[GateCase, Tag("gate")] | Annotated[TransitionCase, Tag("transition")],
    Discriminator(_case_kind),
]


class SuiteMetadata(_Spec):
    """Name and purpose of a test file."""

    name: Name
    description: str = Field(default="", max_length=2000)


class PolicyTestFile(_Spec):
    """A policy test file."""

    api_version: Literal["planpolicy/v1"] = Field(alias="apiVersion")
    kind: Literal["PolicyTest"]
    metadata: SuiteMetadata
    plans: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named plans (RevenuePlanV1) the cases start from"
    )
    contexts: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named evaluation contexts the cases start from"
    )
    cases: list[Case] = Field(min_length=1, description="The test cases")
