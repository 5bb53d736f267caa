"""The poll tick: activate approved plans and advance due ones, one lease at a time.

``Scheduler.tick(now)`` is one pass over the due index (its cost grows with
the due plans, not the stored ones). For each due plan it takes the plan's
lease (a fencing token), re-reads the plan and makes at most a few durable,
fenced, version-checked writes:

1. APPROVED: the gate decides; activation takes the guard in one transaction.
   A rejection is ledgered and final (no queueing): the plan stays APPROVED,
   due again only when it would expire.
2. ACTIVE: the state evaluator decides first (terminal -> transition, ledger
   and guard release in one write); otherwise an in-flight step is reconciled
   with the **same** idempotency key, or the next runnable step is dispatched:
   attempt record (insert-if-absent) -> plan marked DISPATCHED + ``step_intent``
   -> executor call -> outcome recorded with the attempt in one write.
3. PAUSED: only expiry, and outcomes of steps already in flight (looked up by
   key, never re-submitted: a paused plan dispatches nothing).

A worker that lost its lease gets ``FenceLost`` on its next write and
discards its result; the next owner reconciles by key, so a step key never
executes twice and is never lost. ``docs/orchestrator.md`` walks through the
protocol and its crash points.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from orchestrator.clock import humanize
from orchestrator.errors import FenceLost, NotFound, StoreError, VersionConflict
from orchestrator.execution import (
    ActionExecutor,
    ActionIntent,
    ExecutionResult,
    ExecutionStatus,
    ExecutorUnavailable,
    idempotency_key,
)
from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.records import AttemptStatus, Fence, PlanRef, StepAttempt
from orchestrator.service import ORCHESTRATOR, PlanService
from planpolicy import PlanStatus, PlanStep, RevenuePlanV1, StepStatus
from planpolicy.plan import replaced

__all__ = ["CRASH_POINTS", "Scheduler", "SchedulerSettings", "TickSummary"]

log = logging.getLogger(__name__)

#: Protocol points at which a crash-injection test makes the worker process kill
#: itself with SIGKILL (``SchedulerSettings.crash_at``). Never set in production.
CRASH_POINTS = (
    "after_attempt_record",  # attempt record written, no intent yet
    "after_intent",  # plan marked DISPATCHED + step_intent ledgered, executor not called
    "after_dispatch",  # executor called and answered, nothing recorded
    "before_outcome_write",  # outcome known and attempt re-read, the fenced write not made
)

_MAX_PAGE = 500  # the store's largest due-index page
_MAX_PROBLEMS = 50  # plan errors kept in one summary


@dataclass(frozen=True)
class SchedulerSettings:
    """Tunables of the poll loop.

    ``worker_id`` must be unique per running worker (the CLI uses host and pid):
    the lease of a plan is re-entrant for its owner. ``strict`` re-raises an
    unexpected error from one plan instead of counting it (tests).
    """

    worker_id: str = "worker"
    lease_ttl: timedelta = timedelta(seconds=60)
    batch: int = 200
    pending_poll: timedelta = timedelta(minutes=5)
    recheck: timedelta = timedelta(hours=1)
    max_actions_per_plan: int = 8
    crash_at: str | None = None
    max_plans_per_tick: int = 10_000
    shuffle: bool = False
    strict: bool = False

    def __post_init__(self) -> None:
        if self.crash_at is not None and self.crash_at not in CRASH_POINTS:
            raise ValueError(f"unknown crash point `{self.crash_at}` ({', '.join(CRASH_POINTS)})")
        if not 1 <= self.batch <= _MAX_PAGE:
            raise ValueError(f"batch must be between 1 and {_MAX_PAGE}")
        if self.lease_ttl <= timedelta(0) or self.max_actions_per_plan < 1:
            raise ValueError("lease_ttl and max_actions_per_plan must be positive")


@dataclass
class TickSummary:
    """What one tick did: plans looked at (``due``) and counts by event name.

    ``problems`` lists plans whose processing failed unexpectedly (at most 50),
    as ``plan_id: message``; each is also counted under ``errors``.
    """

    due: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        """Count ``n`` events called ``what``."""
        self.counts[what] += n

    def problem(self, ref: PlanRef, message: str) -> None:
        """Record a plan that could not be processed."""
        self.add("errors")
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{ref.plan_id}: {message}")

    @property
    def errors(self) -> int:
        """Plans whose processing failed in this tick."""
        return self.counts["errors"]

    def as_dict(self) -> dict[str, int]:
        """``{"due": n, event: count, ...}`` with events in name order."""
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

    def tick(self, now: datetime, *, should_stop: Callable[[], bool] | None = None) -> TickSummary:
        """One poll pass at ``now``: every plan due at or before ``now`` gets a turn.

        The due index is read a page at a time until a page brings no plan this
        pass has not looked at yet (plans it advanced are no longer due; plans
        leased by other workers are theirs), so the cost follows the due work.
        ``should_stop`` is asked between plans (a signal, a Lambda's remaining
        time): the plans not reached stay due for the next pass.
        """
        summary = TickSummary()
        seen: set[tuple[str, str]] = set()
        rng: random.Random | None = None
        while len(seen) < self.settings.max_plans_per_tick:
            limit = min(len(seen) + self.settings.batch, _MAX_PAGE)
            refs = self.store.due_plans(now, limit=limit)
            fresh = [r for r in refs if (r.tenant_id, r.plan_id) not in seen]
            if not fresh:
                break
            if self.settings.shuffle:  # spread concurrent workers over the page
                if rng is None:  # seeded once per pass, as the first shuffle needs it
                    rng = random.Random(f"{self.settings.worker_id}@{now.isoformat()}")
                rng.shuffle(fresh)
            for ref in fresh[: self.settings.max_plans_per_tick - len(seen)]:
                if should_stop is not None and should_stop():
                    summary.add("stopped_early")
                    return summary
                seen.add((ref.tenant_id, ref.plan_id))
                summary.due += 1
                self._process(ref, now, summary)
            if len(refs) < limit:
                break
        return summary

    def _process(self, ref: PlanRef, now: datetime, summary: TickSummary) -> None:
        # Leases follow the clock (the wall clock in production), so that a long
        # tick does not hand out leases that have already run out.
        lease_at = max(now, self.service.clock.now())
        try:
            # A plain read first: with several workers on one due index, most plans on
            # a page were advanced by someone else meanwhile, and a read is cheaper
            # than taking and giving back a lease (two conditional writes).
            current = self.store.get_plan(ref.tenant_id, ref.plan_id)
            if current.next_due_at is None or current.next_due_at > now:
                summary.add("already_advanced")
                return
            fence = self.store.acquire_lease(
                ref.tenant_id,
                ref.plan_id,
                self.settings.worker_id,
                lease_at,
                self.settings.lease_ttl,
            )
        except NotFound:
            summary.add("vanished")
            return
        except StoreError as exc:
            if self.settings.strict:
                raise
            summary.problem(ref, exc.message)
            return
        if fence is None:
            summary.add("lease_busy")
            return
        try:
            # Read again under the lease; afterwards each write returns the plan as
            # stored, which is what the next action builds on (any other writer
            # makes the version check fail and the result is discarded).
            plan = self.store.get_plan(ref.tenant_id, ref.plan_id)
            for _ in range(self.settings.max_actions_per_plan):
                if plan.next_due_at is None or plan.next_due_at > now:
                    return
                plan = self._advance(plan, now, fence, summary)
        except _Stop:
            return
        except (FenceLost, VersionConflict) as exc:
            # Someone else (a newer lease owner or a person) changed the plan: our
            # result is discarded; the next tick reconciles by idempotency key.
            summary.add("discarded")
            log.info("plan %s: %s", ref.plan_id, exc)
        except NotFound:
            summary.add("vanished")
        except Exception as exc:  # one bad plan never stops the pass
            if self.settings.strict:
                raise
            log.exception("plan %s could not be processed", ref.plan_id)
            summary.problem(ref, getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        finally:
            try:
                self.store.release_lease(fence)
            except StoreError as exc:  # the lease runs out by itself
                log.warning("plan %s: lease not released: %s", ref.plan_id, exc.message)

    # --- one step of progress for one plan -------------------------------------

    def _advance(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> RevenuePlanV1:
        status = plan.status
        if status == PlanStatus.APPROVED:
            return self._approved(plan, now, fence, summary)
        if status == PlanStatus.ACTIVE:
            return self._active(plan, now, fence, summary)
        if status == PlanStatus.PAUSED:
            return self._paused(plan, now, fence, summary)
        # DRAFT or terminal: nothing to do, ever; leave the due index
        self._write(plan, now, fence, next_due=None)
        raise _Stop

    def _expire(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary, why: str
    ) -> NoReturn:
        """End a plan that reached ``expires_at`` outside ACTIVE (the evaluator covers ACTIVE)."""
        self._end(plan, now, fence, "expire", LedgerEvent.EXPIRED, "expired", why)
        summary.add("expired")
        raise _Stop

    def _approved(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> RevenuePlanV1:
        if now >= plan.expires_at:
            self._expire(plan, now, fence, summary, "expires_at reached before activation")
        result = self.service.activate_plan(plan, ORCHESTRATOR, fence=fence, now=now)
        summary.add("activated" if result.activated else "activation_rejected")
        if not result.activated:
            raise _Stop
        return result.plan

    def _paused(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> RevenuePlanV1:
        if now >= plan.expires_at:
            self._expire(plan, now, fence, summary, "expires_at reached while paused")
        inflight = next((s for s in plan.steps if s.status == StepStatus.DISPATCHED), None)
        if inflight is not None:
            return self._reconcile(plan, inflight, now, fence, summary, [])
        self._write(plan, now, fence, next_due=self._next_due(plan, now))
        raise _Stop

    def _active(
        self, plan: RevenuePlanV1, now: datetime, fence: Fence, summary: TickSummary
    ) -> RevenuePlanV1:
        facts = self.runtime.facts(self.store, self.service.accounts, plan, now, active_plans=False)
        outcome = self.runtime.evaluator.evaluate(plan, facts, now)
        notes: list[LedgerDraft] = []
        if outcome.errors:
            # Fail closed: an objective that cannot be evaluated is not met, and says so,
            # once per cause rather than at every recheck.
            message = ("state evaluator: " + "; ".join(e.message for e in outcome.errors))[:2000]
            if plan.evaluation_error != message:
                notes.append(
                    self._draft(now, fence, LedgerEvent.NOTE, message, evidence=outcome.as_dict())
                )
                plan = replaced(plan, {"evaluation_error": message})
            summary.add("evaluation_errors")
        elif plan.evaluation_error is not None:
            notes.append(
                self._draft(
                    now,
                    fence,
                    LedgerEvent.NOTE,
                    "state evaluator: the objective can be evaluated again",
                    evidence=outcome.as_dict(),
                )
            )
            plan = replaced(plan, {"evaluation_error": None})
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
                entries=notes,
            )
            summary.add(str(outcome.reason))
            raise _Stop
        inflight = next((s for s in plan.steps if s.status == StepStatus.DISPATCHED), None)
        if inflight is not None:
            return self._reconcile(plan, inflight, now, fence, summary, notes)
        # A step whose retries ran out while the plan was paused gets its adaptation now.
        for step in plan.steps:
            if step.status != StepStatus.FAILED:
                continue
            spec = self.runtime.steps.spec(plan, step)
            if spec is not None and step.attempts >= spec.retry.limit:
                return self._adapt(plan, step, now, fence, summary, notes)
        for candidate in self.runtime.steps.ready(plan):
            step = plan.step(candidate.step_id)
            if step.due_at is None:
                due, problem = self.runtime.steps.due_at(
                    plan, step, facts, plan.activated_at or now
                )
                if problem is not None:
                    plan = self._hold(plan, step, now, fence, problem.message, notes, summary)
                    continue
                plan = self._set_step(plan, step, due_at=due)
                step = plan.step(step.step_id)
            assert step.due_at is not None
            if step.due_at > now:
                continue
            # `when` is checked once the step is due, before anyone is asked to approve
            # it, and again at dispatch: a step whose precondition is false is skipped.
            pre = self.runtime.steps.precondition(plan, step, facts)
            if pre.holds is False:
                why = pre.reason.message if pre.reason else "precondition false"
                skipped = self._set_step(plan, step, status=StepStatus.SKIPPED, skip_reason=why)
                entry = self._draft(
                    now,
                    fence,
                    LedgerEvent.SKIPPED,
                    f"step `{step.action_type}` skipped: {why}",
                    step_id=step.step_id,
                    evidence=pre.reason.as_dict() if pre.reason else {},
                )
                summary.add("skipped")
                return self._write(skipped, now, fence, entries=[*notes, entry], next_due=now)
            if pre.holds is None:
                assert pre.reason is not None
                plan = self._hold(plan, step, now, fence, pre.reason.message, notes, summary)
                continue
            if self.runtime.steps.needs_approval(plan, step):
                summary.add("awaiting_approval")
                continue
            return self._dispatch(plan, step, now, fence, summary, notes)
        self._write(plan, now, fence, entries=notes, next_due=self._next_due(plan, now))
        raise _Stop

    def _hold(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        message: str,
        notes: list[LedgerDraft],
        summary: TickSummary,
    ) -> RevenuePlanV1:
        """A due step whose rules cannot be evaluated waits (fail closed); noted once per cause."""
        summary.add("held")
        text = f"step `{step.action_type}` held: {message}"
        if step.last_error == text[:2000]:
            return plan
        notes.append(self._draft(now, fence, LedgerEvent.NOTE, text, step_id=step.step_id))
        return self._set_step(plan, step, last_error=text[:2000])

    # --- the step protocol -------------------------------------------------------

    def _dispatch(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        notes: list[LedgerDraft],
    ) -> RevenuePlanV1:
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
        # False: an interrupted worker wrote it and never dispatched; same key, go on.
        fresh = self.store.put_attempt(record, fence)
        self._crash("after_attempt_record")
        intent = self._intent(plan, step, attempt_no)
        dispatched = self._set_step(plan, step, status=StepStatus.DISPATCHED, attempts=attempt_no)
        reason = f"dispatch `{step.action_type}` attempt {attempt_no}"
        if not fresh:
            reason += " (its attempt record was left by an interrupted worker)"
        entry = self._draft(
            now,
            fence,
            LedgerEvent.STEP_INTENT,
            reason,
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
            self._unavailable(plan, plan.step(step.step_id), now, fence, summary, [], exc)
        self._crash("after_dispatch")
        return self._record(
            plan, plan.step(step.step_id), result, now, fence, summary, [], record=record
        )

    def _reconcile(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        notes: list[LedgerDraft],
    ) -> RevenuePlanV1:
        """An in-flight attempt: look its outcome up by key.

        An ACTIVE plan re-submits the **same** key when the service never saw it;
        a PAUSED plan only looks (it dispatches nothing) and keeps polling.
        """
        intent = self._intent(plan, step, step.attempts)
        entries = list(notes)
        how = "looked up by key"
        try:
            result = self.executor.lookup(intent.key)
            if result.status == ExecutionStatus.UNKNOWN and plan.status == PlanStatus.ACTIVE:
                summary.add("resubmitted")
                entries.append(
                    self._draft(
                        now,
                        fence,
                        LedgerEvent.NOTE,
                        f"the execution service has no outcome for `{step.action_type}` attempt "
                        f"{step.attempts}: re-submitted with the same idempotency key",
                        step_id=step.step_id,
                        attempt=step.attempts,
                        evidence={"idempotency_key": intent.key},
                    )
                )
                how = "re-submitted with the same key"
                result = self.executor.submit(intent)
        except ExecutorUnavailable as exc:
            self._unavailable(plan, step, now, fence, summary, entries, exc)
        summary.add("reconciled")
        return self._record(plan, step, result, now, fence, summary, entries, how=how)

    def _unavailable(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        entries: list[LedgerDraft],
        exc: ExecutorUnavailable,
    ) -> NoReturn:
        """The outcome is ambiguous: keep the attempt in flight and look it up by key later."""
        summary.add("executor_unavailable")
        log.info("plan %s: execution service unavailable: %s", plan.plan_id, exc)
        message = f"execution service unavailable: {exc}"[:2000]
        if step.last_error != message:  # noted once per cause, not at every poll
            entries = [
                *entries,
                self._draft(
                    now,
                    fence,
                    LedgerEvent.NOTE,
                    f"`{step.action_type}` attempt {step.attempts}: {message}; the outcome "
                    "will be looked up with the same idempotency key",
                    step_id=step.step_id,
                    attempt=step.attempts,
                ),
            ]
            plan = self._set_step(plan, step, last_error=message)
        self._write(plan, now, fence, entries=entries, next_due=now + self.settings.pending_poll)
        raise _Stop from exc

    def _record(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        result: ExecutionResult,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        entries: list[LedgerDraft],
        *,
        how: str | None = None,
        record: StepAttempt | None = None,
    ) -> RevenuePlanV1:
        """Write the outcome of the step's current attempt, fenced, in one transaction.

        ``record`` is the attempt record this worker just wrote (else it is read).
        """
        attempt_no = step.attempts
        key = idempotency_key(plan.plan_id, step.step_id, attempt_no)
        if result.status in (ExecutionStatus.PENDING, ExecutionStatus.UNKNOWN):
            summary.add("pending")
            self._write(
                plan, now, fence, entries=entries, next_due=now + self.settings.pending_poll
            )
            raise _Stop
        try:
            current = record or self.store.get_attempt(
                plan.tenant_id, plan.plan_id, step.step_id, attempt_no
            )
        except NotFound:  # defensive: the record is written before any dispatch
            current = StepAttempt(
                tenant_id=plan.tenant_id,
                plan_id=plan.plan_id,
                step_id=step.step_id,
                attempt=attempt_no,
                action_type=step.action_type,
                created_at=now,
                updated_at=now,
            )
            self.store.put_attempt(current, fence)
        ok = result.status == ExecutionStatus.SUCCEEDED
        attempt = current.model_copy(
            update={
                "status": AttemptStatus.SUCCEEDED if ok else AttemptStatus.FAILED,
                "updated_at": now,
                "outcome": dict(result.detail),
                "error": result.error[:2000] if result.error else None,
                "fence": fence.token,
            }
        )
        outcome_entry = self._draft(
            now,
            fence,
            LedgerEvent.STEP_OUTCOME,
            f"`{step.action_type}` attempt {attempt_no} {'succeeded' if ok else 'failed'}"
            + (f" ({how})" if how else "")
            + (f": {result.error}" if result.error else ""),
            step_id=step.step_id,
            attempt=attempt_no,
            evidence={
                "status": result.status.value,
                "detail": result.detail,
                "idempotency_key": key,
            },
        )
        entries = [*entries, outcome_entry]
        self._crash("before_outcome_write")
        if ok:
            done = self._set_step(
                plan, step, status=StepStatus.SUCCEEDED, completed_at=now, last_error=None
            )
            summary.add("succeeded")
            return self._write(done, now, fence, entries=entries, attempts=[attempt], next_due=now)
        summary.add("failed")
        spec = self.runtime.steps.spec(plan, step)
        limit = spec.retry.limit if spec else 1
        error = result.error[:2000] if result.error else "failed"
        if attempt_no < limit:
            backoff = spec.retry.backoff(attempt_no) if spec else timedelta(0)
            failed = self._set_step(
                plan, step, status=StepStatus.FAILED, last_error=error, due_at=now + backoff
            )
            retry_entry = self._draft(
                now,
                fence,
                LedgerEvent.RETRIED,
                f"`{step.action_type}` will retry as attempt {attempt_no + 1} "
                + ("at once" if backoff <= timedelta(0) else f"after {humanize(backoff)}")
                + f" (attempt {attempt_no} of {limit} failed)",
                step_id=step.step_id,
                attempt=attempt_no + 1,
                evidence={"backoff_seconds": int(backoff.total_seconds()), "limit": limit},
            )
            return self._write(
                failed,
                now,
                fence,
                entries=[*entries, retry_entry],
                attempts=[attempt],
                next_due=self._next_due(failed, now),
            )
        failed = self._set_step(plan, step, status=StepStatus.FAILED, last_error=error)
        if plan.status != PlanStatus.ACTIVE:
            self._exhausted_while_paused(
                failed, failed.step(step.step_id), now, fence, summary, entries, attempt
            )
        return self._adapt(
            failed, failed.step(step.step_id), now, fence, summary, entries, [attempt]
        )

    def _exhausted_while_paused(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        entries: list[LedgerDraft],
        attempt: StepAttempt,
    ) -> NoReturn:
        """The last attempt failed while the plan is paused: apply what a pause allows.

        ``skip`` applies at once (it dispatches nothing). ``pause`` is already in
        force: the step waits for the resume, which grants it one more attempt.
        ``abort`` needs an ACTIVE plan (the lifecycle's ``adapt_abort``): it applies
        as soon as the plan resumes.
        """
        spec = self.runtime.steps.spec(plan, step)
        rule = spec.retry.on_exhausted if spec else "pause"
        why = self._exhausted_reason(plan, step, rule)
        if rule == "skip":
            plan = self._set_step(plan, step, status=StepStatus.SKIPPED, skip_reason=why)
            event = LedgerEvent.SKIPPED
            summary.add("adapt_skip")
        elif rule == "pause":
            plan = self._set_step(plan, step, status=StepStatus.PENDING)
            why += "; the plan is already paused: resuming it grants one more attempt"
            event = LedgerEvent.NOTE
            summary.add("adapt_pause")
        else:
            why += "; the plan is paused: the adaptation applies when it resumes"
            event = LedgerEvent.NOTE
        entry = self._draft(
            now, fence, event, why, step_id=step.step_id, evidence={"adaptation": rule}
        )
        self._write(
            plan,
            now,
            fence,
            entries=[*entries, entry],
            attempts=[attempt],
            next_due=self._next_due(plan, now),
        )
        raise _Stop

    def _adapt(
        self,
        plan: RevenuePlanV1,
        step: PlanStep,
        now: datetime,
        fence: Fence,
        summary: TickSummary,
        entries: list[LedgerDraft],
        attempts: list[StepAttempt] | None = None,
    ) -> RevenuePlanV1:
        """Retries exhausted: the plan type's rule applies -- skip, pause or abort, nothing else.

        ``pause`` leaves the step PENDING, so that resuming the plan (a person's
        decision) grants it one more attempt under the next idempotency key.
        """
        spec = self.runtime.steps.spec(plan, step)
        rule = spec.retry.on_exhausted if spec else "pause"
        why = self._exhausted_reason(plan, step, rule)
        attempts = attempts or []
        evidence: dict[str, object] = {"adaptation": rule, "attempts": step.attempts}
        if rule == "skip":
            skipped = self._set_step(plan, step, status=StepStatus.SKIPPED, skip_reason=why)
            entry = self._draft(
                now, fence, LedgerEvent.SKIPPED, why, step_id=step.step_id, evidence=evidence
            )
            summary.add("adapt_skip")
            return self._write(
                skipped, now, fence, entries=[*entries, entry], attempts=attempts, next_due=now
            )
        if rule == "abort":
            trigger, event = "adapt_abort", LedgerEvent.ABORTED
        else:
            trigger, event = "adapt_pause", LedgerEvent.PAUSED
            plan = self._set_step(plan, step, status=StepStatus.PENDING)
            why += f"; resume the plan to try attempt {step.attempts + 1}"
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
            evidence=evidence,
        )
        summary.add(f"adapt_{'abort' if rule == 'abort' else 'pause'}")
        raise _Stop

    def _exhausted_reason(self, plan: RevenuePlanV1, step: PlanStep, rule: str) -> str:
        spec = self.runtime.steps.spec(plan, step)
        limit = spec.retry.limit if spec else 1
        error = f" (last error: {step.last_error})" if step.last_error else ""
        return (
            f"retries exhausted: `{step.action_type}` failed attempt {step.attempts} of "
            f"{limit}{error}; the plan type's rule is `{rule}`"
        )

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
        """Fire a lifecycle trigger; a terminal state releases the guard in the same write."""
        machine = self.runtime.machine(plan)
        status = machine.fire(plan.status, trigger)
        terminal = machine.is_terminal(status)
        update: dict[str, object] = {"status": status, "updated_at": now, "next_due_at": None}
        if terminal:
            update |= {"ended_at": now, "completion_reason": completion}
        ended = replaced(plan, update)
        if not terminal:
            ended = replaced(ended, {"next_due_at": self._next_due(ended, now)})
        entry = self._draft(now, fence, event, reason, step_id=step_id, evidence=evidence or {})
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
        """One fenced, version-checked plan write with its ledger entries and attempts."""
        updated = replaced(plan, {"next_due_at": next_due, "updated_at": now})
        return self.store.update_plan(
            updated,
            expected_version=plan.version,
            entries=entries or [],
            fence=fence,
            attempts=attempts or [],
        )

    def _draft(
        self,
        now: datetime,
        fence: Fence,
        event: LedgerEvent,
        reason: str,
        *,
        step_id: uuid.UUID | None = None,
        attempt: int | None = None,
        evidence: dict[str, object] | None = None,
    ) -> LedgerDraft:
        """A ledger entry by the orchestrator, naming the worker and fence that wrote it."""
        return self.runtime.draft(
            now,
            ORCHESTRATOR.user_id,
            event,
            reason,
            step_id=step_id,
            attempt=attempt,
            evidence={**(evidence or {}), "worker": self.settings.worker_id, "fence": fence.token},
        )

    @staticmethod
    def _set_step(plan: RevenuePlanV1, step: PlanStep, **changes: object) -> RevenuePlanV1:
        steps = [replaced(s, changes) if s.step_id == step.step_id else s for s in plan.steps]
        return replaced(plan, {"steps": steps})

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
            # The objective depends on facts that change outside the plan: look again.
            candidates.append(now + self.settings.recheck)
            for step in self.runtime.steps.ready(plan):
                # A step due now that was not dispatched is held or awaits approval
                # (which makes the plan due by itself); the recheck looks again.
                if step.due_at is not None and step.due_at > now:
                    candidates.append(step.due_at)
        elif plan.status != PlanStatus.PAUSED:
            return None
        return max(now, min(candidates))

    def _crash(self, point: str) -> None:
        if self.settings.crash_at == point:
            os.kill(os.getpid(), signal.SIGKILL)
