"""An in-memory ActionExecutor for tests and simulation, scriptable per step and attempt.

It behaves like the real execution service where it matters: an intent is
executed at most once per idempotency key (re-submits return the recorded
outcome), and ``effective_executions`` counts what actually ran.

Scripts map ``(action_type, attempt)`` — or ``(action_type, None)`` for every
attempt — to an :class:`Outcome` such as ``Outcome.succeed()``,
``Outcome.fail("...")``, ``Outcome.timeout()`` (the call raises but the action
ran), ``Outcome.unreachable()`` (the call raises and nothing ran),
``Outcome.pending(for_=timedelta(days=2))`` or ``Outcome.stay_pending()``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.clock import Clock
from orchestrator.execution import (
    ActionIntent,
    ExecutionResult,
    ExecutionStatus,
    ExecutorUnavailable,
)

__all__ = ["MemoryExecutor", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What executing one attempt does."""

    kind: str = "succeed"  # succeed | fail | timeout | unreachable | pending
    error: str | None = None
    pending_for: timedelta = timedelta(0)
    then: str = "succeed"  # outcome once a pending intent finishes or the service is reached
    times: int = 0  # unreachable: calls that fail before the service is reached (0: all)

    @classmethod
    def succeed(cls) -> Outcome:
        return cls("succeed")

    @classmethod
    def fail(cls, error: str = "action failed") -> Outcome:
        return cls("fail", error)

    @classmethod
    def timeout(cls) -> Outcome:
        """The action runs, but the caller never hears back (an ambiguous outcome)."""
        return cls("timeout")

    @classmethod
    def unreachable(cls, times: int = 0, then: str = "succeed") -> Outcome:
        """The service cannot be reached: the call raises and the action does not run.

        After ``times`` such calls (0: never) the service is reached and ``then`` applies.
        """
        return cls("unreachable", then=then, times=times)

    @classmethod
    def pending(cls, for_: timedelta, then: str = "succeed", error: str | None = None) -> Outcome:
        """Accepted; reported PENDING for ``for_`` (clock time), then ``then``."""
        return cls("pending", error, for_, then)

    @classmethod
    def stay_pending(cls) -> Outcome:
        """Accepted, and never finishes."""
        return cls("pending", None, timedelta(0), "pending")


@dataclass
class _Record:
    intent: ActionIntent
    started: datetime
    outcome: Outcome
    log: list[str] = field(default_factory=list)


class MemoryExecutor:
    """Deduplicating, scriptable executor; thread-safe."""

    def __init__(
        self, clock: Clock, script: dict[tuple[str, int | None], Outcome] | None = None
    ) -> None:
        self.clock = clock
        self.script = dict(script or {})
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self.effective_executions: Counter[str] = Counter()
        self.submissions: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()

    def _outcome_for(self, intent: ActionIntent) -> Outcome:
        return self.script.get(
            (intent.action_type, intent.attempt),
            self.script.get((intent.action_type, None), Outcome.succeed()),
        )

    def submit(self, intent: ActionIntent) -> ExecutionResult:
        """Execute ``intent`` unless its key was seen; the recorded outcome either way."""
        key = intent.key
        with self._lock:
            self.submissions[key] += 1
            record = self._records.get(key)
            if record is None:
                outcome = self._outcome_for(intent)
                if outcome.kind == "unreachable":
                    self._refused[key] += 1
                    if not outcome.times or self._refused[key] <= outcome.times:
                        raise ExecutorUnavailable(f"cannot reach the execution service for `{key}`")
                    outcome = Outcome(outcome.then, outcome.error)
                record = _Record(intent, self.clock.now(), outcome)
                self._records[key] = record
                self.effective_executions[key] += 1
                if record.outcome.kind == "timeout":
                    raise ExecutorUnavailable(f"timed out submitting `{key}`")
            return self._result(record)

    def lookup(self, key: str) -> ExecutionResult:
        """The outcome recorded under ``key`` (``UNKNOWN`` if never submitted)."""
        with self._lock:
            self.lookups[key] += 1
            record = self._records.get(key)
            return (
                ExecutionResult(ExecutionStatus.UNKNOWN) if record is None else self._result(record)
            )

    def _result(self, record: _Record) -> ExecutionResult:
        outcome = record.outcome
        kind = outcome.kind
        if kind == "pending":
            if outcome.then == "pending" or self.clock.now() < record.started + outcome.pending_for:
                return ExecutionResult(ExecutionStatus.PENDING)
            kind = outcome.then
        if kind == "fail":
            return ExecutionResult(
                ExecutionStatus.FAILED, {"key": record.intent.key}, outcome.error or "action failed"
            )
        return ExecutionResult(ExecutionStatus.SUCCEEDED, {"key": record.intent.key})
