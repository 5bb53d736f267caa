"""Proposals on the service side: the dry run, storing the DRAFT, recording rejections.

:class:`ProposalService` runs a proposer, has :func:`planpolicy.proposal.review`
judge the answer, and then writes exactly one of:

- a **DRAFT** through :meth:`PlanService.create` (which forces DRAFT again and
  writes the ``created`` ledger entry), followed by a ``proposal`` ledger entry
  with the audit record: proposer and model id, input and raw-output digests,
  rationale, bundle digest, gate decision and dry-run summary;
- a **rejection record** (event ``proposal_rejected``) in the
  :class:`~orchestrator.proposal_log.RejectionLog`, since there is no plan
  whose ledger could hold it.

Nothing else is ever stored: no plan is approved or activated here, and the
proposer acts as a non-human actor, which the authority rules never let approve.

:class:`SchedulerDryRun` is the dry run the review attaches: the orchestrator's
own :class:`~orchestrator.scheduler.Scheduler` over a private in-memory store,
an in-memory executor where every action succeeds, and a manual clock moved
from due time to due time over a short horizon. Human-touch steps are left
unapproved, so the summary shows them waiting for a person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orchestrator.accounts import StaticAccounts
from orchestrator.adapters.memory import MemoryStore
from orchestrator.adapters.memory_executor import MemoryExecutor
from orchestrator.clock import ManualClock
from orchestrator.ledger import LedgerEvent
from orchestrator.policy import PolicyRuntime
from orchestrator.proposal_log import RejectionLog, RejectionRecord
from orchestrator.scheduler import Scheduler, SchedulerSettings
from orchestrator.service import PlanService
from planpolicy import Actor, Facts, PolicyBundle, RevenuePlanV1
from planpolicy.facts import ActivePlanRef
from planpolicy.proposal import (
    DryRun,
    ProposalRequest,
    ProposalResult,
    Proposer,
    ProposerError,
    ProposerOutput,
    review,
)

__all__ = ["ProposalService", "SchedulerDryRun", "StoredProposal", "proposer_actor"]

DRY_RUN_ACTOR = "dry-run"


def proposer_actor(proposer: Proposer) -> Actor:
    """The non-human actor a proposer writes as (``proposer:<name>``); it can never approve."""
    return Actor.system(f"proposer:{proposer.name}")


@dataclass(frozen=True)
class SchedulerDryRun:
    """A short simulation of an approved plan with the orchestrator's scheduler (in memory)."""

    horizon: timedelta = timedelta(days=14)
    max_ticks: int = 60
    recheck: timedelta = timedelta(days=1)

    def __call__(
        self, bundle: PolicyBundle, plan: RevenuePlanV1, facts: Facts
    ) -> Mapping[str, Any]:
        """Run ``plan`` (APPROVED) from ``facts.now`` until it ends or the horizon; summarise."""
        start = facts.now
        end = start + self.horizon
        clock = ManualClock(start)
        store = MemoryStore()
        runtime = PolicyRuntime(bundle)
        accounts = StaticAccounts(
            {(plan.tenant_id, plan.account_id): (facts.account, facts.signals)}
        )
        service = PlanService(store, runtime, accounts, clock)
        executor = MemoryExecutor(clock)
        scheduler = Scheduler(
            service,
            executor,
            SchedulerSettings(worker_id=DRY_RUN_ACTOR, recheck=self.recheck),
        )
        seed = runtime.draft(start, DRY_RUN_ACTOR, LedgerEvent.NOTE, "dry run of a proposal")
        store.create_plan(plan.model_copy(update={"next_due_at": start, "version": 1}), [seed])
        ticks = 0
        current = plan
        while ticks < self.max_ticks:
            scheduler.tick(clock.now())
            ticks += 1
            current = store.get_plan(plan.tenant_id, plan.plan_id)
            due = current.next_due_at
            if runtime.machine(current).is_terminal(current.status) or due is None or due > end:
                break
            if due > clock.now():
                clock.set(due)
        ledger = store.ledger(plan.tenant_id, plan.plan_id)
        events = Counter(str(e.event) for e in ledger[1:])
        rejected = [e for e in ledger if e.event == LedgerEvent.ACTIVATION_REJECTED]
        return {
            "start": start.isoformat(),
            "horizon_days": self.horizon / timedelta(days=1),
            "simulated_until": clock.now().isoformat(),
            "ticks": ticks,
            "activated": current.activated_at is not None,
            "status": current.status,
            "completion_reason": current.completion_reason,
            "activation_rejected": rejected[-1].reason if rejected else None,
            "steps": [
                {
                    "action_type": step.action_type,
                    "status": step.status.value,
                    "attempts": step.attempts,
                    "due_at": step.due_at.isoformat() if step.due_at else None,
                    "awaiting_approval": runtime.steps.needs_approval(current, step),
                    "skip_reason": step.skip_reason,
                }
                for step in current.steps
            ],
            "events": dict(sorted(events.items())),
            "executions": sum(executor.effective_executions.values()),
        }


@dataclass(frozen=True)
class StoredProposal:
    """What a proposal left behind: the stored DRAFT or the rejection record."""

    result: ProposalResult
    plan: RevenuePlanV1 | None = None
    rejection: RejectionRecord | None = None


class ProposalService:
    """Proposes plans for accounts and stores the outcome (a DRAFT or a rejection record)."""

    def __init__(
        self,
        plans: PlanService,
        rejections: RejectionLog,
        *,
        dry_run: DryRun | None = None,
    ) -> None:
        self.plans = plans
        self.rejections = rejections
        self.dry_run: DryRun | None = dry_run if dry_run is not None else SchedulerDryRun()

    @property
    def bundle(self) -> PolicyBundle:
        return self.plans.runtime.bundle

    def _active_plans(self, request: ProposalRequest) -> list[ActivePlanRef]:
        store = self.plans.store
        active = []
        for name in sorted(self.bundle.plan_types):
            holder = store.active_plan_for(request.tenant_id, request.account_id, name)
            if holder is not None:
                active.append(ActivePlanRef(holder, request.tenant_id, request.account_id, name))
        return active

    def evaluate(self, request: ProposalRequest, proposer: Proposer) -> ProposalResult:
        """Ask ``proposer`` and review its answer; stores nothing."""
        output: ProposerOutput | ProposerError
        try:
            output = proposer.propose(self.bundle, request)
        except ProposerError as exc:
            output = exc
        return review(
            self.bundle,
            request,
            proposer,
            output,
            active_plans=self._active_plans(request),
            dry_run=self.dry_run,
        )

    def propose(self, request: ProposalRequest, proposer: Proposer) -> StoredProposal:
        """Evaluate, then store the DRAFT with its ledger entries, or the rejection record."""
        return self.store(self.evaluate(request, proposer), proposer)

    def store(self, result: ProposalResult, proposer: Proposer) -> StoredProposal:
        """Write ``result``: a DRAFT plus ledger entries, or one rejection record."""
        runtime = self.plans.runtime
        actor = proposer_actor(proposer)
        audit = result.audit
        if result.drafted and result.plan is not None:
            why = audit.rationale or "no rationale given"
            stored = self.plans.create(
                result.plan,
                actor,
                f"proposed by `{audit.proposer}` (proposal `{audit.proposal_id}`): {why}",
            )
            entry = runtime.draft(
                stored.created_at,
                actor.user_id,
                LedgerEvent.PROPOSAL,
                why,
                evidence=result.evidence(),
            )
            self.plans.store.append_ledger(stored.tenant_id, stored.plan_id, [entry])
            return StoredProposal(result, plan=stored)
        reason = "; ".join(r.message for r in result.reasons) or "proposal rejected"
        draft = runtime.draft(
            audit.time,
            actor.user_id,
            LedgerEvent.PROPOSAL_REJECTED,
            reason,
            evidence=result.evidence(),
        )
        record = self.rejections.append(
            draft,
            tenant_id=audit.tenant_id,
            account_id=audit.account_id,
            proposal_id=audit.proposal_id,
        )
        return StoredProposal(result, rejection=record)
