"""The ActionExecutor port: the only way a plan step reaches the outside world.

Plans execute only through the existing action-execution service. The
orchestrator submits an :class:`ActionIntent` with the idempotency key
``plan_id:step_id:attempt`` and later looks its outcome up by the same key; it
has no execution surface of its own.
"""

from __future__ import annotations

import enum
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ActionExecutor",
    "ActionIntent",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutorUnavailable",
    "idempotency_key",
]


def idempotency_key(plan_id: str, step_id: uuid.UUID | str, attempt: int) -> str:
    """The execution idempotency key of one step attempt."""
    return f"{plan_id}:{step_id}:{attempt}"


class ExecutionStatus(enum.StrEnum):
    """What the execution service knows about an intent."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    """A definite failure: the next attempt may run."""
    PENDING = "PENDING"
    """Accepted, not finished: look it up again later with the same key."""
    UNKNOWN = "UNKNOWN"
    """The service has no intent under this key (it never arrived)."""


@dataclass(frozen=True)
class ActionIntent:
    """A request to perform one step attempt."""

    tenant_id: str
    plan_id: str
    step_id: uuid.UUID
    attempt: int
    action_type: str
    parameters: dict[str, Any] = field(default_factory=dict)
    account_id: str = ""

    @functools.cached_property
    def key(self) -> str:
        """The idempotency key ``plan_id:step_id:attempt`` (made once per intent)."""
        return idempotency_key(self.plan_id, self.step_id, self.attempt)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "plan_id": self.plan_id,
            "step_id": str(self.step_id),
            "attempt": self.attempt,
            "action_type": self.action_type,
            "parameters": self.parameters,
            "account_id": self.account_id,
            "idempotency_key": self.key,
        }


@dataclass(frozen=True)
class ExecutionResult:
    """The service's answer for one key."""

    status: ExecutionStatus
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class ExecutorUnavailable(Exception):
    """The service did not answer (timeout, connection error): the outcome is ambiguous.

    The orchestrator reconciles with the same key on a later tick.
    """

    retryable = True


class ActionExecutor(Protocol):
    """Submit intents idempotently and look outcomes up by key."""

    def submit(self, intent: ActionIntent) -> ExecutionResult:
        """Submit (or re-submit) an intent; the same key never executes twice."""
        ...

    def lookup(self, key: str) -> ExecutionResult:
        """The outcome under ``key``; ``UNKNOWN`` if the service never saw it."""
        ...
