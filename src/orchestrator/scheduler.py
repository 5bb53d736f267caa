"""The poll tick: activate approved plans and advance due ones, one lease at a time.

``Scheduler.tick(now)`` is one pass over the due index (its cost grows with
the due plans, not the stored ones). For each due plan it takes the plan's
lease (a fencing token), re-reads the plan and makes at most a few durable,
fenced, version-checked writes:

1. APPROVED: the gate decides; activation takes the guard in one transaction.
2. ACTIVE: the state evaluator decides first (terminal -> transition, ledger
   and guard release in one write); otherwise an in-flight step is reconciled
   with the **same** idempotency key, or the next runnable step is dispatched:
   attempt record (insert-if-absent) -> plan marked DISPATCHED + ``step_intent``
   -> executor call -> outcome recorded with the attempt in one write.
3. PAUSED: only expiry, and outcomes of steps already in flight.

A worker that lost its lease gets ``FenceLost`` on its next write and
discards its result; the next owner reconciles by key, so a step key never
executes twice and is never lost.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.errors import FenceLost, NotFound, VersionConflict
from orchestrator.execution import (
    ActionExecutor,
    ActionIntent,
    ExecutionResult,
    ExecutionStatus,
    ExecutorUnavailable,
)
from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.records import AttemptStatus, Fence, PlanRef, StepAttempt
from orchestrator.service import ORCHESTRATOR, PlanService
from planpolicy import PlanStatus, PlanStep, RevenuePlanV1, StepStatus

__all__ = ["Scheduler", "SchedulerSettings", "TickSummary"]

log = logging.getLogger(__name__)

#: Hook for crash-injection tests: the name of a protocol point at which the
#: worker process kills itself (see tests/orchestrator). Never set in production.
CRASH_POINTS = ("after_attempt_record", "after_intent", "after_dispatch")


@dataclass(frozen=True)
class SchedulerSettings:
    """Tunables of the poll loop."""

    worker_id: str = "worker"
    lease_ttl: timedelta = timedelta(seconds=60)
    batch: int = 200
    pending_poll: timedelta = timedelta(minutes=5)
    recheck: timedelta = timedelta(hours=1)
    max_actions_per_plan: int = 8
    crash_at: str | None = None


@dataclass
class TickSummary:
    """What one tick did, by event name."""

    due: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def as_dict(self) -> dict[str, int]:
        return {"due": self.due, **dict(sorted(self.counts.items()))}

    def __str__(self) -> str:
        parts = [f"{self.due} due"] + [f"{n} {k}" for k, n in sorted(self.counts.items())]
        return ", ".join(parts)


class _Stop(Exception):
    """Nothing more to do for this plan in this tick."""


class Scheduler:
    """One worker's view of the poll loop."""

    def __init__(
        self,
        service: PlanService,
        executor: ActionExecutor,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self.service = service
        self.store = service.store
        self.runtime = service.runtime
        self.executor = executor
        self.settings = settings or SchedulerSettings()

    # --- the pass ------------------------------------------------------------

    def tick(self, now: datetime) -> TickSummary:
        """One poll pass at ``now``: every plan due at or before ``now`` gets a turn."""
        summary = TickSummary()
        refs = self.store.due_plans(now, limit=self.settings.batch)
        summary.due = len(refs)
        for ref in refs:
            self._process(ref, now, summary)
        return summary

    def _process(self, ref: PlanRef, now: datetime, summary: TickSummary) -> None:
        fence = self.store.acquire_lease(
            ref.tenant_id, ref.plan_id, self.settings.worker_id, now, self.settings.lease_ttl
        )
        if fence is None:
            summary.add("lease_busy")
            return
        try:
            for _ in range(self.settings.max_actions_per_plan):
                plan = self.store.get_plan(ref.tenant_id, ref.plan_id)
                if plan.next_due_at is None or plan.next_due_at > now:
                    return
                self._advance(plan, now, fence, summary)
        except _Stop:
            return
        except (FenceLost, VersionConflict) as exc:
            # Someone else (a newer lease owner or a person) changed the plan: our
            # result is discarded; the next tick reconciles by idempotency key.
            summary.add("discarded")
            log.info("plan %s: %s", ref.plan_id, exc)
        except NotFound:
            summary.add("vanished")
        finally:
            self.store.release_lease(fence)

    # --- one step of progress for one plan -------------------------------------

    def _advance(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> None:
        status = plan.status
        if status == PlanStatus.APPROVED:
            self._approved(plan, now, fence, summary)
        elif status == PlanStatus.ACTIVE:
            self._active(plan, now, fence, summary)
        elif status == PlanStatus.PAUSED:
            self._paused(plan, now, fence, summary)
        else:
            self._write(plan, now, fence, next_due=None)
            raise _Stop

    def _approved(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> None:
        if now >= plan.expires_at:
            self._end(
                plan,
                now,
                fence,
                "expire",
                LedgerEvent.EXPIRED,
                "expired",
                "expires_at reached before activation",
            )
            summary.add("expired")
            raise _Stop
        result = self.service.activate_plan(plan, ORCHESTRATOR, fence=fence)
        summary.add("activated" if result.activated else "activation_rejected")
        if not result.activated:
            raise _Stop

    def _paused(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> None:
        if now >= plan.expires_at:
            self._end(
                plan,
                now,
                fence,
                "expire",
                LedgerEvent.EXPIRED,
                "expired",
                "expires_at reached while paused",
            )
            summary.add("expired")
            raise _Stop
        inflight = next((s for s in plan.steps if s.status == StepStatus.DISPATCHED), None)
        if inflight is not None:
            self._reconcile(plan, inflight, now, fence, summary)
            return
        self._write(plan, now, fence, next_due=self._next_due(plan, now))
        raise _Stop

    def _active(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> None:
        facts = self.runtime.facts(self.store, self.service.accounts, plan, now)
        outcome = self.runtime.evaluator.evaluate(plan, facts, now)
        if outcome.terminal:
            trigger = "complete" if outcome.status == PlanStatus.COMPLETED else "expire"
            event = LedgerEvent.COMPLETED if trigger == "complete" else LedgerEvent.EXPIRED
            self._end(
                plan,
                now,
                fence,
                trigger,
                event,
                outcome.reason or trigger,
                f"state evaluator: {outcome.reason}",
                evidence=outcome.as_dict(),
            )
            summary.add(str(outcome.reason))
            raise _Stop
        notes: list[LedgerDraft] = []
        if outcome.errors:
            notes.append(
                self.runtime.draft(
                    now,
                    ORCHESTRATOR.user_id,
                    LedgerEvent.NOTE,
                    "; ".join(e.message for e in outcome.errors),
                    evidence=outcome.as_dict(),
                )
            )
            summary.add("evaluation_errors")
        inflight = next((s for s in plan.steps if s.status == StepStatus.DISPATCHED), None)
        if inflight is not None:
            self._reconcile(plan, inflight, now, fence, summary)
            return
        # A step whose retries ran out while the plan was paused gets its adaptation now.
        for step in plan.steps:
            spec = self.runtime.steps.spec(plan, step)
            if (
                step.status == StepStatus.FAILED
                and spec is not None
                and step.attempts >= spec.retry.limit
            ):
                self._adapt(plan, step, now, fence, summary, [])
                return
        for candidate in self.runtime.steps.ready(plan):
            step = plan.step(candidate.step_id)
            if step.due_at is None:
                due, problem = self.runtime.steps.due_at(
                    plan, step, facts, plan.activated_at or now
                )
                if problem is not None:
                    notes.append(
                        self.runtime.draft(
                            now,
                            ORCHESTRATOR.user_id,
                            LedgerEvent.NOTE,
                            problem.message,
                            step_id=step.step_id,
                            evidence=problem.as_dict(),
                        )
                    )
                    continue
                plan = self._set_step(plan, step, due_at=due)
                step = plan.step(step.step_id)
            assert step.due_at is not None
            if step.due_at > now or self.runtime.steps.needs_approval(plan, step):
                continue
            pre = self.runtime.steps.precondition(plan, step, facts)
            if pre.holds is False:
                skipped = self._set_step(
                    plan,
                    step,
                    status=StepStatus.SKIPPED,
                    skip_reason=pre.reason.message if pre.reason else "",
                )
                entry = self.runtime.draft(
                    now,
                    ORCHESTRATOR.user_id,
                    LedgerEvent.SKIPPED,
                    f"step `{step.action_type}` skipped: {pre.reason.message if pre.reason else 'precondition false'}",
                    step_id=step.step_id,
                    evidence=pre.reason.as_dict() if pre.reason else {},
                )
                self._write(skipped, now, fence, entries=[*notes, entry], next_due=now)
                summary.add("skipped")
                return
            if pre.holds is None:
                assert pre.reason is not None
                notes.append(
                    self.runtime.draft(
                        now,
                        ORCHESTRATOR.user_id,
                        LedgerEvent.NOTE,
                        f"step `{step.action_type}` held: {pre.reason.message}",
                        step_id=step.step_id,
                        evidence=pre.reason.as_dict(),
                    )
                )
                summary.add("held")
                continue
            self._dispatch(plan, step, now, fence, summary, notes)
            return
        self._write(plan, now, fence, entries=notes, next_due=self._next_due(plan, now))
        raise _Stop

    # --- the step protocol -------------------------------------------------------

    def _dispatch(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        notes: list[LedgerDraft],
    ) -> None:
        attempt_no = step.attempts + 1
        record = StepAttempt(
            tenant_id=plan.tenant_id,
            plan_id=plan.plan_id,
            step_id=step.step_id,
            attempt=attempt_no,
            action_type=step.action_type,
            created_at=now,
            updated_at=now,
            fence=fence.token,
        )
        self.store.put_attempt(record, fence)  # False: a crashed owner wrote it; same key, go on
        self._crash("after_attempt_record")
        intent = self._intent(plan, step, attempt_no)
        dispatched = self._set_step(plan, step, status=StepStatus.DISPATCHED, attempts=attempt_no)
        entry = self.runtime.draft(
            now,
            ORCHESTRATOR.user_id,
            LedgerEvent.STEP_INTENT,
            f"dispatch `{step.action_type}` attempt {attempt_no}",
            step_id=step.step_id,
            attempt=attempt_no,
            evidence={"idempotency_key": intent.key},
        )
        plan = self._write(
            dispatched,
            now,
            fence,
            entries=[*notes, entry],
            next_due=now + self.settings.pending_poll,
        )
        self._crash("after_intent")
        summary.add("dispatched")
        try:
            result = self.executor.submit(intent)
        except ExecutorUnavailable as exc:
            log.info("plan %s: executor unavailable: %s", plan.plan_id, exc)
            summary.add("executor_unavailable")
            raise _Stop from exc
        self._crash("after_dispatch")
        self._record(plan, plan.step(step.step_id), result, now, fence, summary)

    def _reconcile(
        self, plan: RevenuePlanV1, step: PlanStep, now: datetime, fence: Fence, summary: TickSummary
    ) -> None:
        """An in-flight attempt: ask for its outcome by key; re-submit the same key if unseen."""
        intent = self._intent(plan, step, step.attempts)
        try:
            result = self.executor.lookup(intent.key)
            if result.status == ExecutionStatus.UNKNOWN:
                summary.add("resubmitted")
                result = self.executor.submit(intent)
        except ExecutorUnavailable as exc:
            summary.add("executor_unavailable")
            self._write(plan, now, fence, next_due=now + self.settings.pending_poll)
            raise _Stop from exc
        self._record(plan, step, result, now, fence, summary)

    def _record(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        result: ExecutionResult,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
    ) -> None:
        attempt_no = step.attempts
        if result.status in (ExecutionStatus.PENDING, ExecutionStatus.UNKNOWN):
            summary.add("pending")
            self._write(plan, now, fence, next_due=now + self.settings.pending_poll)
            raise _Stop
        try:
            current = self.store.get_attempt(plan.tenant_id, plan.plan_id, step.step_id, attempt_no)
        except NotFound:
            current = StepAttempt(
                tenant_id=plan.tenant_id,
                plan_id=plan.plan_id,
                step_id=step.step_id,
                attempt=attempt_no,
                action_type=step.action_type,
                created_at=now,
                updated_at=now,
            )
        ok = result.status == ExecutionStatus.SUCCEEDED
        attempt = current.model_copy(
            update={
                "status": AttemptStatus.SUCCEEDED if ok else AttemptStatus.FAILED,
                "updated_at": now,
                "outcome": dict(result.detail),
                "error": result.error,
                "fence": fence.token,
            }
        )
        outcome_entry = self.runtime.draft(
            now,
            ORCHESTRATOR.user_id,
            LedgerEvent.STEP_OUTCOME,
            f"`{step.action_type}` attempt {attempt_no} {'succeeded' if ok else 'failed'}"
            + (f": {result.error}" if result.error else ""),
            step_id=step.step_id,
            attempt=attempt_no,
            evidence={"status": result.status.value, "detail": result.detail},
        )
        if ok:
            done = self._set_step(
                plan, step, status=StepStatus.SUCCEEDED, completed_at=now, last_error=None
            )
            self._write(done, now, fence, entries=[outcome_entry], attempts=[attempt], next_due=now)
            summary.add("succeeded")
            return
        summary.add("failed")
        spec = self.runtime.steps.spec(plan, step)
        limit = spec.retry.limit if spec else 1
        if attempt_no < limit:
            backoff = spec.retry.backoff(attempt_no) if spec else timedelta(0)
            failed = self._set_step(
                plan, step, status=StepStatus.FAILED, last_error=result.error, due_at=now + backoff
            )
            retry_entry = self.runtime.draft(
                now,
                ORCHESTRATOR.user_id,
                LedgerEvent.RETRIED,
                f"`{step.action_type}` will retry as attempt {attempt_no + 1} after {backoff}",
                step_id=step.step_id,
                attempt=attempt_no + 1,
            )
            self._write(
                failed,
                now,
                fence,
                entries=[outcome_entry, retry_entry],
                attempts=[attempt],
                next_due=self._next_due(failed, now),
            )
            return
        failed = self._set_step(plan, step, status=StepStatus.FAILED, last_error=result.error)
        if plan.status != PlanStatus.ACTIVE:  # paused: adapt on resume
            self._write(
                failed,
                now,
                fence,
                entries=[outcome_entry],
                attempts=[attempt],
                next_due=self._next_due(failed, now),
            )
            raise _Stop
        self._adapt(
            failed, failed.step(step.step_id), now, fence, summary, [outcome_entry], [attempt]
        )

    def _adapt(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        entries: list[LedgerDraft],
        attempts: list[StepAttempt] | None = None,
    ) -> None:
        """Retries exhausted: the plan type's rule applies -- skip, pause or abort, nothing else."""
        spec = self.runtime.steps.spec(plan, step)
        rule = spec.retry.on_exhausted if spec else "pause"
        why = f"`{step.action_type}` failed {step.attempts} time(s), the retry limit: {rule}"
        attempts = attempts or []
        if rule == "skip":
            skipped = self._set_step(plan, step, status=StepStatus.SKIPPED, skip_reason=why)
            entry = self.runtime.draft(
                now, ORCHESTRATOR.user_id, LedgerEvent.SKIPPED, why, step_id=step.step_id
            )
            self._write(
                skipped, now, fence, entries=[*entries, entry], attempts=attempts, next_due=now
            )
            summary.add("adapt_skip")
            return
        trigger, event = (
            ("adapt_pause", LedgerEvent.PAUSED)
            if rule == "pause"
            else ("adapt_abort", LedgerEvent.ABORTED)
        )
        self._end(
            plan,
            now,
            fence,
            trigger,
            event,
            "retries_exhausted",
            why,
            entries=entries,
            attempts=attempts,
            step_id=step.step_id,
        )
        summary.add(f"adapt_{rule}")
        raise _Stop

    # --- helpers -------------------------------------------------------------------

    def _end(
        self,
        plan: RevenuePlanV1,
        now: datetime,
        fence: Fence,
        trigger: str,
        event: LedgerEvent,
        completion: str,
        reason: str,
        *,
        evidence: dict[str, object] | None = None,
        entries: list[LedgerDraft] | None = None,
        attempts: list[StepAttempt] | None = None,
        step_id: uuid.UUID | None = None,
    ) -> RevenuePlanV1:
        machine = self.runtime.machine(plan)
        status = machine.fire(plan.status, trigger)
        terminal = machine.is_terminal(status)
        update: dict[str, object] = {"status": status, "updated_at": now}
        if terminal:
            update |= {"ended_at": now, "completion_reason": completion, "next_due_at": None}
        else:
            update["next_due_at"] = None
        ended = plan.model_copy(update=update)
        if not terminal:
            ended = ended.model_copy(update={"next_due_at": self._next_due(ended, now)})
        entry = self.runtime.draft(
            now, ORCHESTRATOR.user_id, event, reason, step_id=step_id, evidence=evidence or {}
        )
        return self.store.update_plan(
            ended,
            expected_version=plan.version,
            entries=[*(entries or []), entry],
            fence=fence,
            release_guard=terminal,
            attempts=attempts or [],
        )

    def _write(
        self,
        plan: RevenuePlanV1,
        now: datetime,
        fence: Fence,
        *,
        next_due: datetime | None,
        entries: list[LedgerDraft] | None = None,
        attempts: list[StepAttempt] | None = None,
    ) -> RevenuePlanV1:
        updated = plan.model_copy(update={"next_due_at": next_due, "updated_at": now})
        return self.store.update_plan(
            updated,
            expected_version=plan.version,
            entries=entries or [],
            fence=fence,
            attempts=attempts or [],
        )

    @staticmethod
    def _set_step(plan: RevenuePlanV1, step: PlanStep, **changes: object) -> RevenuePlanV1:
        steps = [
            s.model_copy(update=changes) if s.step_id == step.step_id else s for s in plan.steps
        ]
        return plan.model_copy(update={"steps": steps})

    def _intent(self, plan: RevenuePlanV1, step: PlanStep, attempt: int) -> ActionIntent:
        return ActionIntent(
            tenant_id=plan.tenant_id,
            plan_id=plan.plan_id,
            step_id=step.step_id,
            attempt=attempt,
            action_type=step.action_type,
            parameters=dict(step.parameters),
            account_id=plan.account_id,
        )

    def _next_due(self, plan: RevenuePlanV1, now: datetime) -> datetime | None:
        """When the plan next needs a look: a due step, an in-flight check, expiry, or the recheck."""
        if plan.status == PlanStatus.APPROVED:
            return now
        candidates = [plan.expires_at]
        if any(s.status == StepStatus.DISPATCHED for s in plan.steps):
            candidates.append(now + self.settings.pending_poll)
        if plan.status == PlanStatus.ACTIVE:
            candidates.append(now + self.settings.recheck)
            for step in self.runtime.steps.ready(plan):
                if self.runtime.steps.needs_approval(plan, step):
                    continue
                # A step due now that was not dispatched is held (a rule could not be
                # evaluated); the recheck looks again. Unknown timing: likewise.
                if step.due_at is not None and step.due_at > now:
                    candidates.append(step.due_at)
        elif plan.status != PlanStatus.PAUSED:
            return None
        return min(candidates)

    def _crash(self, point: str) -> None:
        if self.settings.crash_at == point:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
