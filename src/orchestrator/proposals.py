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

:class:`SimulatedDryRun` is the dry run the review attaches: the project's
simulator (the production scheduler over virtual time, in memory) runs the
plan, approved at once, for two weeks with every action succeeding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orchestrator.ledger import LedgerEvent
from orchestrator.proposal_log import RejectionLog, RejectionRecord
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

__all__ = ["ProposalService", "SimulatedDryRun", "StoredProposal", "proposer_actor"]

DRY_RUN_APPROVER = "dry-run-approver"
"""The stand-in person who approves the plan inside the dry run (never in a real store)."""


def proposer_actor(proposer: Proposer) -> Actor:
    """The non-human actor a proposer writes as (``proposer:<name>``); it can never approve."""
    return Actor.system(f"proposer:{proposer.name}")


@dataclass(frozen=True)
class SimulatedDryRun:
    """A short run of the plan in the project's simulator (:func:`planpolicy.simulate.run`).

    The scenario: the plan is created as proposed at ``facts.now``, approved at
    once by a stand-in person holding every role the AuthorityPolicy lets
    approve, and left to the production scheduler until ``horizon``, with the
    account's facts fixed and every action succeeding. Human-touch steps stay
    unapproved, so the summary shows them waiting for a person.
    """

    horizon: timedelta = timedelta(days=14)

    def __call__(
        self, bundle: PolicyBundle, plan: RevenuePlanV1, facts: Facts
    ) -> Mapping[str, Any]:
        """Simulate ``plan`` from ``facts.now``; a JSON-able summary."""
        from planpolicy.scenario import HumanAction, Scenario, ScenarioPlan
        from planpolicy.simulate import run

        start = facts.now
        roles = frozenset(
            r for g in bundle.authority.grants if g.action == "approve" for r in g.roles
        )
        scenario = Scenario(
            name="proposal-dry-run",
            description="a proposed plan, approved at once, every action succeeding",
            path="<proposal>",
            start=start,
            end=start + self.horizon,
            tick=None,
            tenant=plan.tenant_id,
            people={DRY_RUN_APPROVER: roles},
            accounts={plan.account_id: (dict(facts.account), dict(facts.signals))},
            plans=(ScenarioPlan(plan, start, plan.created_by),),
            actions=(
                HumanAction(
                    start, plan.plan_id, "approve", DRY_RUN_APPROVER, roles, reason="dry run"
                ),
            ),
        )
        result = run(scenario, bundle)
        [simulated] = result.plans
        events = Counter(str(e["event"]) for e in simulated.ledger)
        rejected = [
            str(e.get("reason")) for e in simulated.ledger if e["event"] == "activation_rejected"
        ]
        return {
            "start": start.isoformat(),
            "horizon_days": self.horizon / timedelta(days=1),
            "activated": simulated.record.get("activated_at") is not None,
            "status": simulated.status,
            "completion_reason": simulated.completion_reason,
            "approval_refused": result.refusals[0].message if result.refusals else None,
            "activation_rejected": rejected[-1] if rejected else None,
            "steps": [
                {
                    "action_type": step.action_type,
                    "status": step.status,
                    "attempts": step.attempts,
                    "awaiting_approval": step.human_touch
                    and step.approved_by is None
                    and step.status == "PENDING",
                    "skip_reason": step.skip_reason,
                }
                for step in simulated.steps
            ],
            "events": dict(sorted(events.items())),
            "executions": result.stats.executions,
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
        self.dry_run: DryRun | None = dry_run if dry_run is not None else SimulatedDryRun()

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
            # The DRAFT and its audit entry are one durable write.
            stored = self.plans.create(
                result.plan,
                actor,
                f"proposed by `{audit.proposer}` (proposal `{audit.proposal_id}`): {why}",
                also=lambda now: [
                    runtime.draft(
                        now, actor.user_id, LedgerEvent.PROPOSAL, why, evidence=result.evidence()
                    )
                ],
            )
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
