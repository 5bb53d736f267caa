"""Test helpers: a scripted proposer and a proposal service over in-memory stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from orchestrator.accounts import StaticAccounts
from orchestrator.adapters.memory import MemoryStore
from orchestrator.clock import ManualClock
from orchestrator.policy import PolicyRuntime
from orchestrator.proposal_log import MemoryRejectionLog
from orchestrator.proposals import ProposalService, SimulatedDryRun
from orchestrator.service import PlanService
from planpolicy import PolicyBundle, RevenuePlanV1
from planpolicy.proposal import ProposalRequest, ProposerError, ProposerOutput

__all__ = ["Scripted", "Services", "candidate", "counter_ids"]


def candidate(**changes: Any) -> dict[str, Any]:
    """A valid RENEWAL_DEFENSE candidate for `acme`, with top-level fields replaced."""
    base: dict[str, Any] = {
        "plan_type": "RENEWAL_DEFENSE",
        "objective": "Renew Acme before May.",
        "expires_in_days": 60,
        "steps": [
            {"action_type": "PREP_RENEWAL_BRIEF", "parameters": {"audience": "Acme CFO"}},
            {"action_type": "REQUEST_RENEWAL_MEETING"},
            {"action_type": "ESCALATE_SUPPORT_RISK", "human_touch": True},
        ],
        "rationale": "Renewal due in 75 days with two open P1 tickets.",
    }
    base.update(changes)
    return base


class Scripted:
    """A proposer that answers what the test says (an output, or raises an error)."""

    def __init__(
        self, answer: Any, *, name: str = "scripted", model_id: str | None = "m-1"
    ) -> None:
        self.answer = answer
        self._name = name
        self._model_id = model_id
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_id(self) -> str | None:
        return self._model_id

    def propose(self, bundle: PolicyBundle, request: ProposalRequest) -> ProposerOutput:
        self.calls += 1
        if isinstance(self.answer, ProposerError):
            raise self.answer
        if isinstance(self.answer, ProposerOutput):
            return self.answer
        return ProposerOutput(self.answer, self.answer)


def counter_ids() -> Callable[[], uuid.UUID]:
    """Deterministic UUIDs 1, 2, 3, ... (for golden output)."""
    numbers: Iterator[int] = iter(range(1, 1_000_000))
    return lambda: uuid.UUID(int=next(numbers))


class Services:
    """A proposal service over a fresh in-memory store and rejection log."""

    def __init__(
        self, bundle: PolicyBundle, request: ProposalRequest, *, horizon_days: int = 14
    ) -> None:
        self.store = MemoryStore()
        self.rejections = MemoryRejectionLog()
        accounts = StaticAccounts()
        accounts.set(request.tenant_id, request.account_id, request.account, request.signals)
        self.service = PlanService(
            self.store, PolicyRuntime(bundle), accounts, ManualClock(request.now)
        )
        self.proposals = ProposalService(
            self.service,
            self.rejections,
            dry_run=SimulatedDryRun(horizon=timedelta(days=horizon_days)),
        )

    def plans(self, tenant_id: str) -> list[RevenuePlanV1]:
        return list(self.store.list_plans(tenant_id, limit=200).items)
