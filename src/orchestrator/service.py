"""Plan commands: create, approve, activate, pause, resume, abort, approve a step.

Every mutation is authority-checked for the actor's role and the plan's risk,
applied through the lifecycle machine, and written to the ledger with the
actor in the same durable operation as the plan change. An invalid transition
raises :class:`~planpolicy.InvalidTransition`; a refused guard raises
:class:`~planpolicy.GuardDenied`; a stale write raises
:class:`~orchestrator.errors.VersionConflict`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from orchestrator.accounts import AccountFacts
from orchestrator.clock import Clock
from orchestrator.errors import GuardConflict, NotFound, VersionConflict
from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.policy import PolicyRuntime
from orchestrator.ports import PlanStore
from orchestrator.records import Fence
from planpolicy import (
    Actor,
    Decision,
    GuardDenied,
    InvalidTransition,
    PlanStatus,
    Reason,
    RevenuePlanV1,
    StepStatus,
    check_authority,
)
from planpolicy.plan import replaced

__all__ = ["ORCHESTRATOR", "ActivationResult", "PlanService"]

ORCHESTRATOR = Actor.system("orchestrator")
"""The actor the scheduler acts as; it can never approve."""

CONFLICT_RETRIES = 5
"""How often a command without ``expected_version`` re-reads and decides again."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class ActivationResult:
    """An activation attempt: the plan after it, the gate's decision, whether it activated."""

    plan: RevenuePlanV1
    decision: Decision
    activated: bool
    reasons: tuple[Reason, ...] = ()


def _check_version(plan: RevenuePlanV1, expected: int | None) -> None:
    if expected is not None and expected != plan.version:
        raise VersionConflict(plan.tenant_id, plan.plan_id, expected, plan.version)


def _retrying(expected_version: int | None, command: Callable[[], _T]) -> _T:
    """Run ``command``; on a version conflict read and decide again (unless a version was asked)."""
    tries = 1 if expected_version is not None else CONFLICT_RETRIES
    for attempt in range(1, tries + 1):
        try:
            return command()
        except VersionConflict:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class PlanService:
    """The plan commands over one store, one policy runtime, account facts and a clock."""

    def __init__(
        self, store: PlanStore, runtime: PolicyRuntime, accounts: AccountFacts, clock: Clock
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.accounts = accounts
        self.clock = clock

    # --- reads -------------------------------------------------------------

    def get(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        return self.store.get_plan(tenant_id, plan_id)

    def check(self, tenant_id: str, plan_id: str) -> Decision:
        """Dry-run gate decision for a stored plan; changes nothing."""
        plan = self.store.get_plan(tenant_id, plan_id)
        now = self.clock.now()
        return self.runtime.gate.evaluate(
            plan, self.runtime.facts(self.store, self.accounts, plan, now)
        )

    # --- commands ----------------------------------------------------------

    def create(
        self,
        plan: RevenuePlanV1,
        actor: Actor,
        reason: str = "",
        *,
        also: Callable[[datetime], Sequence[LedgerDraft]] | None = None,
    ) -> RevenuePlanV1:
        """Store ``plan`` as a new DRAFT (status, approvals and progress are reset).

        ``also(now)`` may add ledger entries written in the same durable
        operation (the proposal generator records its audit entry this way).
        """
        now = self.clock.now()
        steps = [
            replaced(
                s,
                {
                    "status": StepStatus.PENDING,
                    "attempts": 0,
                    "human_approved_by": None,
                    "human_approved_at": None,
                    "due_at": None,
                    "last_error": None,
                    "skip_reason": None,
                    "completed_at": None,
                },
            )
            for s in plan.steps
        ]
        draft = replaced(
            plan,
            {
                "status": PlanStatus.DRAFT.value,
                "steps": steps,
                "created_by": actor.user_id,
                "approved_by": None,
                "approved_at": None,
                "activated_at": None,
                "ended_at": None,
                "completion_reason": None,
                "bundle_digest": None,
                "next_due_at": None,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            },
        )
        draft = RevenuePlanV1.model_validate(draft.model_dump())
        entry = self.runtime.draft(
            now,
            actor.user_id,
            LedgerEvent.CREATED,
            reason or "plan proposed",
            evidence={"plan_type": plan.plan_type, "steps": [s.action_type for s in steps]},
        )
        return self.store.create_plan(draft, [entry, *(also(now) if also else ())])

    def approve(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str = "",
        *,
        expected_version: int | None = None,
    ) -> RevenuePlanV1:
        """DRAFT -> APPROVED by a person the AuthorityPolicy allows; due for activation at once."""
        return _retrying(
            expected_version,
            lambda: self._approve(tenant_id, plan_id, actor, reason, expected_version),
        )

    def _approve(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str,
        expected_version: int | None,
    ) -> RevenuePlanV1:
        plan = self.store.get_plan(tenant_id, plan_id)
        _check_version(plan, expected_version)
        now = self.clock.now()
        authority = check_authority(self.runtime.bundle, plan, "approve", actor)
        status = self.runtime.machine(plan).fire(plan.status, "approve", authority=authority)
        updated = replaced(
            plan,
            {
                "status": status,
                "approved_by": actor.user_id,
                "approved_at": now,
                "bundle_digest": self.runtime.bundle.digest,
                "updated_at": now,
                "next_due_at": now,
            },
        )
        entry = self.runtime.draft(
            now,
            actor.user_id,
            LedgerEvent.APPROVED,
            reason or "approved",
            evidence={"basis": authority.basis, "plan_risk": authority.plan_risk},
        )
        return self.store.update_plan(updated, expected_version=plan.version, entries=[entry])

    def activate(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str = "",
        *,
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> ActivationResult:
        """APPROVED -> ACTIVE when the gate allows; otherwise the rejection is ledgered.

        The activation guard is taken in the same transaction, so two plans of
        the same (tenant, account, plan type) racing on different machines
        cannot both become ACTIVE: the loser is rejected, never queued.
        """

        def attempt() -> ActivationResult:
            plan = self.store.get_plan(tenant_id, plan_id)
            _check_version(plan, expected_version)
            return self.activate_plan(plan, actor, reason, fence=fence)

        return _retrying(expected_version, attempt)

    def activate_plan(
        self,
        plan: RevenuePlanV1,
        actor: Actor,
        reason: str = "",
        *,
        fence: Fence | None = None,
        now: datetime | None = None,
    ) -> ActivationResult:
        """Activation of an already-read plan (used by the scheduler under its lease).

        ``now`` is the decision time (the scheduler's tick time; the clock otherwise).
        """
        now = now or self.clock.now()
        machine = self.runtime.machine(plan)
        machine.guards(plan.status, "activate")  # InvalidTransition before any evaluation
        facts = self.runtime.facts(self.store, self.accounts, plan, now)
        decision = self.runtime.gate.evaluate(plan, facts)
        gate_entry = self.runtime.draft(
            now,
            actor.user_id,
            LedgerEvent.GATE_DECISION,
            "gate allows activation" if decision.can_activate else "gate denies activation",
            evidence=decision.as_dict(),
        )
        if not decision.can_activate:
            rejected = self._reject(plan, actor, now, decision.reasons, gate_entry, fence)
            return ActivationResult(rejected, decision, False, decision.reasons)
        status = machine.fire(plan.status, "activate", gate=decision)
        steps = []
        for step in plan.steps:
            due, _problem = self.runtime.steps.due_at(plan, step, facts, now)
            steps.append(replaced(step, {"due_at": due if _problem is None else None}))
        activated = replaced(
            plan,
            {
                "status": status,
                "activated_at": now,
                "updated_at": now,
                "steps": steps,
                "next_due_at": now,
            },
        )
        entries = [
            gate_entry,
            self.runtime.draft(
                now, actor.user_id, LedgerEvent.ACTIVATED, reason or "gate allowed activation"
            ),
        ]
        try:
            stored = self.store.update_plan(
                activated,
                expected_version=plan.version,
                entries=entries,
                activate_guard=True,
                fence=fence,
            )
        except GuardConflict as exc:
            conflict = Reason(
                "CONFLICT_ACTIVE_PLAN",
                f"plan `{exc.holder_plan_id}` is already ACTIVE for account `{plan.account_id}` "
                f"and plan type `{plan.plan_type}`",
                self.runtime.bundle.conflict.ref,
                details={"holder": exc.holder_plan_id},
            )
            rejected = self._reject(plan, actor, now, (conflict,), None, fence)
            return ActivationResult(rejected, decision, False, (conflict,))
        return ActivationResult(stored, decision, True)

    def _reject(
        self,
        plan: RevenuePlanV1,
        actor: Actor,
        now: datetime,
        reasons: tuple[Reason, ...],
        gate_entry: LedgerDraft | None,
        fence: Fence | None,
    ) -> RevenuePlanV1:
        """Record a rejected activation; the plan stays APPROVED and is not retried (no queueing)."""
        entry = self.runtime.draft(
            now,
            actor.user_id,
            LedgerEvent.ACTIVATION_REJECTED,
            "; ".join(r.message for r in reasons),
            evidence={"reasons": [r.as_dict() for r in reasons]},
        )
        entries = [gate_entry, entry] if gate_entry is not None else [entry]
        # Not due again until it would expire: a rejection is final unless a person re-activates.
        parked = replaced(plan, {"next_due_at": plan.expires_at, "updated_at": now})
        return self.store.update_plan(
            parked, expected_version=plan.version, entries=entries, fence=fence
        )

    def pause(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str,
        *,
        expected_version: int | None = None,
    ) -> RevenuePlanV1:
        """ACTIVE -> PAUSED: nothing is dispatched; outcomes still recorded; expiry still applies."""
        return self._transition(
            tenant_id, plan_id, "pause", LedgerEvent.PAUSED, actor, reason, expected_version
        )

    def resume(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str,
        *,
        expected_version: int | None = None,
    ) -> RevenuePlanV1:
        """PAUSED -> ACTIVE, authority-checked, and only if the gate allows again."""
        return self._transition(
            tenant_id, plan_id, "resume", LedgerEvent.RESUMED, actor, reason, expected_version
        )

    def abort(
        self,
        tenant_id: str,
        plan_id: str,
        actor: Actor,
        reason: str,
        *,
        expected_version: int | None = None,
    ) -> RevenuePlanV1:
        """Any non-terminal state -> ABORTED; releases the activation guard."""
        return self._transition(
            tenant_id, plan_id, "abort", LedgerEvent.ABORTED, actor, reason, expected_version
        )

    def _transition(
        self,
        tenant_id: str,
        plan_id: str,
        trigger: str,
        event: LedgerEvent,
        actor: Actor,
        reason: str,
        expected_version: int | None,
    ) -> RevenuePlanV1:
        return _retrying(
            expected_version,
            lambda: self._transition_once(
                tenant_id, plan_id, trigger, event, actor, reason, expected_version
            ),
        )

    def _transition_once(
        self,
        tenant_id: str,
        plan_id: str,
        trigger: str,
        event: LedgerEvent,
        actor: Actor,
        reason: str,
        expected_version: int | None,
    ) -> RevenuePlanV1:
        plan = self.store.get_plan(tenant_id, plan_id)
        _check_version(plan, expected_version)
        now = self.clock.now()
        machine = self.runtime.machine(plan)
        guards = machine.guards(plan.status, trigger)
        authority = (
            check_authority(self.runtime.bundle, plan, trigger, actor)
            if "authority" in guards
            else None
        )
        if authority is not None and not authority.allowed:
            raise GuardDenied(trigger, "authority", authority.reasons)
        decision = None
        evidence: dict[str, object] = {"basis": authority.basis if authority else ""}
        if "gate" in guards:
            facts = self.runtime.facts(self.store, self.accounts, plan, now)
            decision = self.runtime.gate.evaluate(plan, facts)
            evidence["gate"] = decision.as_dict()
            if not decision.can_activate:
                # The refusal is a decision about the plan's course: it goes to the ledger.
                denied = self.runtime.draft(
                    now,
                    actor.user_id,
                    LedgerEvent.GATE_DECISION,
                    f"gate denies `{trigger}`: " + "; ".join(r.message for r in decision.reasons),
                    evidence=decision.as_dict(),
                )
                self.store.append_ledger(plan.tenant_id, plan.plan_id, [denied])
                raise GuardDenied(trigger, "gate", decision.reasons)
        status = machine.fire(plan.status, trigger, gate=decision, authority=authority)
        terminal = machine.is_terminal(status)
        update: dict[str, object] = {"status": status, "updated_at": now}
        if terminal:
            update |= {
                "ended_at": now,
                "completion_reason": trigger if trigger != "abort" else "aborted",
                "next_due_at": None,
            }
        elif status == PlanStatus.PAUSED:
            update["next_due_at"] = (
                now  # the scheduler re-plans: expiry and in-flight outcomes only
            )
        else:
            update["next_due_at"] = now
        entry = self.runtime.draft(now, actor.user_id, event, reason, evidence=evidence)
        return self.store.update_plan(
            replaced(plan, update),
            expected_version=plan.version,
            entries=[entry],
            release_guard=terminal,
        )

    def approve_step(
        self,
        tenant_id: str,
        plan_id: str,
        step_id: uuid.UUID | str,
        actor: Actor,
        reason: str = "",
        *,
        expected_version: int | None = None,
    ) -> RevenuePlanV1:
        """A person approves a human-touch step so that it may be dispatched."""
        return _retrying(
            expected_version,
            lambda: self._approve_step(
                tenant_id, plan_id, step_id, actor, reason, expected_version
            ),
        )

    def _approve_step(
        self,
        tenant_id: str,
        plan_id: str,
        step_id: uuid.UUID | str,
        actor: Actor,
        reason: str,
        expected_version: int | None,
    ) -> RevenuePlanV1:
        plan = self.store.get_plan(tenant_id, plan_id)
        _check_version(plan, expected_version)
        now = self.clock.now()
        try:
            step = plan.step(step_id)
        except (KeyError, ValueError) as exc:
            raise NotFound(tenant_id, str(step_id), "step") from exc
        if self.runtime.machine(plan).is_terminal(plan.status):
            raise InvalidTransition(plan.status, "approve_step", [])
        authority = check_authority(self.runtime.bundle, plan, "approve_step", actor)
        if not authority.allowed:
            raise GuardDenied("approve_step", "authority", authority.reasons)
        steps = [
            replaced(s, {"human_approved_by": actor.user_id, "human_approved_at": now})
            if s.step_id == step.step_id
            else s
            for s in plan.steps
        ]
        update: dict[str, object] = {"steps": steps, "updated_at": now}
        if plan.status == PlanStatus.ACTIVE:
            update["next_due_at"] = now
        entry = self.runtime.draft(
            now,
            actor.user_id,
            LedgerEvent.STEP_APPROVED,
            reason or f"step `{step.action_type}` approved",
            step_id=step.step_id,
            evidence={"basis": authority.basis},
        )
        return self.store.update_plan(
            replaced(plan, update), expected_version=plan.version, entries=[entry]
        )
