"""Small records the plan store reads and writes besides plans and ledger entries."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

__all__ = ["AttemptStatus", "Fence", "Page", "PlanRef", "StepAttempt"]

T = TypeVar("T")

_Ident = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]


class AttemptStatus(enum.StrEnum):
    """Where one execution attempt of a step is."""

    STARTED = "STARTED"
    """Recorded before the executor is called; the outcome is not known yet."""
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class StepAttempt(BaseModel):
    """One execution attempt of a step, keyed by ``(plan_id, step_id, attempt)``.

    The key doubles as the executor's idempotency key: an ambiguous outcome is
    reconciled with the same key, only a definite failure moves to attempt n+1.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: _Ident
    plan_id: _Ident
    step_id: uuid.UUID
    attempt: int = Field(ge=1, le=1000)
    status: AttemptStatus = AttemptStatus.STARTED
    action_type: str = Field(default="", max_length=128)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    outcome: dict[str, JsonValue] = Field(default_factory=dict)
    error: str | None = Field(default=None, max_length=2000)
    fence: int = Field(default=0, ge=0, description="Fence token of the last write")

    @property
    def idempotency_key(self) -> str:
        """``plan_id:step_id:attempt``, the key handed to the action executor."""
        return f"{self.plan_id}:{self.step_id}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of a per-plan lease: writes conditioned on it fail once it is stale.

    ``token`` strictly increases each time anyone acquires the plan's lease.
    """

    tenant_id: str
    plan_id: str
    owner: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PlanRef:
    """A pointer to a plan, as the due index and admin scans return it."""

    tenant_id: str
    plan_id: str
    next_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back for the next page (None: last)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None
