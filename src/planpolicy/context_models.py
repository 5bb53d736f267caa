"""The base evaluation context as pydantic models: what CEL expressions may reference.

These models are the source of ``schemas/context.v1.json`` and of the base
context in the package's document shapes (both written by
``planpolicy schema --write``); the compiler reads the generated copy
(:func:`planpolicy.context.base_context_schema`), so compiling policies does
not build these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Account",
    "EvaluationContext",
    "PlanView",
    "Renewal",
    "Signals",
    "StepView",
    "Tenant",
    "context_schema",
]


class _Ctx(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Renewal(_Ctx):
    """The account's upcoming renewal."""

    status: Literal["OPEN", "AT_RISK", "RENEWED", "CHURNED"] = Field(
        description="Renewal status in the CRM"
    )
    amount: float | None = Field(
        default=None, description="Renewal amount in the tenant's currency"
    )


class Account(_Ctx):
    """The customer account the plan is for."""

    account_id: str = Field(description="Account identifier")
    name: str | None = Field(default=None, description="Display name")
    tier: str | None = Field(default=None, description="Commercial tier, e.g. `ENTERPRISE`")
    arr: float | None = Field(default=None, description="Annual recurring revenue")
    health_score: int | None = Field(default=None, description="Customer health, 0 to 100")
    renewal_date: datetime | None = Field(default=None, description="When the contract renews")
    renewal: Renewal | None = Field(default=None, description="Renewal details")
    notes: str | None = Field(
        default=None, description="Free text from the CRM (data, never instructions)"
    )


class Signals(_Ctx):
    """Signals observed on the account."""

    open_p1_tickets: int | None = Field(default=None, description="Open priority-1 support tickets")
    open_tickets: int | None = Field(default=None, description="All open support tickets")
    usage_trend: float | None = Field(
        default=None, description="Relative change of product usage over 30 days, e.g. -0.25"
    )
    days_since_last_contact: int | None = Field(
        default=None, description="Days since the last human contact"
    )
    champion_left: bool | None = Field(default=None, description="The internal champion has left")
    meeting_booked: bool | None = Field(
        default=None, description="A renewal meeting is on the calendar"
    )


class StepView(BaseModel):
    """A step as CEL sees it (keyed by action type in `plan.steps`)."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="Step status, e.g. `SUCCEEDED`")
    attempts: int = Field(description="Attempts made so far")


class PlanView(BaseModel):
    """The plan being evaluated, as CEL sees it."""

    model_config = ConfigDict(extra="forbid")

    plan_id: str
    plan_type: str
    status: str
    activated_at: datetime | None = Field(default=None, description="When the plan became ACTIVE")
    expires_at: datetime | None = Field(default=None, description="When the plan expires")
    age_days: int = Field(description="Whole days since activation (0 before)")
    steps: dict[str, StepView] = Field(description="Steps by action type")


class Tenant(_Ctx):
    """The tenant (the revenue team's organisation)."""

    tenant_id: str


class EvaluationContext(BaseModel):
    """Everything a CEL expression may reference."""

    model_config = ConfigDict(extra="forbid")

    account: Account
    signals: Signals
    plan: PlanView
    tenant: Tenant
    now: datetime = Field(description="Evaluation time (from the clock port, never the wall clock)")


def context_schema() -> dict[str, Any]:
    """The JSON Schema of the base evaluation context, generated from the models."""
    schema = EvaluationContext.model_json_schema()
    schema["title"] = "planpolicy evaluation context v1"
    return schema
