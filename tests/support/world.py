"""A small world for orchestrator tests: a store, a manual clock, accounts, an executor.

``World`` wires the real PlanService and Scheduler over the in-memory store
and a scriptable executor, moves time by hand and reads plans and ledgers back.
``make_plan`` builds valid plans of the bundled ``RENEWAL_DEFENSE`` type and of
the tests' ``FOLLOW_UP`` type (tests/orchestrator/plan_types).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.accounts import StaticAccounts
from orchestrator.adapters.memory import MemoryStore
from orchestrator.adapters.memory_executor import MemoryExecutor, Outcome
from orchestrator.clock import ManualClock
from orchestrator.ledger import LedgerEntry, verify_chain
from orchestrator.policy import PolicyRuntime
from orchestrator.ports import PlanStore
from orchestrator.scheduler import Scheduler, SchedulerSettings, TickSummary
from orchestrator.service import PlanService
from planpolicy import Actor, PlanStep, RevenuePlanV1, load_bundle

ROOT = Path(__file__).resolve().parents[2]
POLICY_PATHS = [
    str(ROOT / "policies"),
    str(ROOT / "plan_types"),
    str(ROOT / "tests" / "orchestrator" / "plan_types"),
]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TENANT = "acme-corp"

AE = Actor("ae-1", frozenset({"account_executive"}))
MANAGER = Actor("mgr-1", frozenset({"revenue_manager"}))
DIRECTOR = Actor("dir-1", frozenset({"revenue_director"}))

RENEWAL_STEPS = ("PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK")
FOLLOW_UP_STEPS = ("SEND_RECAP", "LOG_FOLLOW_UP")

_runtime: PolicyRuntime | None = None


def runtime() -> PolicyRuntime:
    """The compiled test bundle (bundled policies plus the test plan types), once per process."""
    global _runtime
    if _runtime is None:
        _runtime = PolicyRuntime(load_bundle(POLICY_PATHS))
    return _runtime


def account_facts(
    account_id: str,
    *,
    renewal_in: timedelta = timedelta(days=75),
    status: str = "AT_RISK",
    p1_tickets: int = 2,
    at: datetime = T0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(account, signals) of an account whose renewal is eligible for defence."""
    account = {
        "account_id": account_id,
        "tier": "enterprise",
        "arr": 250000.0,
        "renewal_date": (at + renewal_in).isoformat(),
        "renewal": {"status": status, "amount": 250000.0},
    }
    return account, {"open_p1_tickets": p1_tickets, "open_tickets": 5}


_ids = itertools.count(1)


def make_plan(
    account_id: str = "acct-1",
    *,
    plan_type: str = "RENEWAL_DEFENSE",
    tenant_id: str = TENANT,
    expires_in: timedelta | None = None,
    at: datetime = T0,
    plan_id: str | None = None,
) -> RevenuePlanV1:
    """A DRAFT plan with every step of its type, proposed by ``AE``."""
    actions = RENEWAL_STEPS if plan_type == "RENEWAL_DEFENSE" else FOLLOW_UP_STEPS
    if expires_in is None:  # within the plan type's maximum duration
        expires_in = timedelta(days=100 if plan_type == "RENEWAL_DEFENSE" else 20)
    return RevenuePlanV1(
        plan_id=plan_id or f"plan-{next(_ids):05d}-{uuid.uuid4().hex[:6]}",
        tenant_id=tenant_id,
        account_id=account_id,
        plan_type=plan_type,
        plan_type_version=1,
        objective="keep the customer",
        steps=[
            PlanStep(action_type=a, human_touch=(a == "ESCALATE_SUPPORT_RISK")) for a in actions
        ],
        owner=AE.user_id,
        created_by=AE.user_id,
        created_at=at,
        updated_at=at,
        expires_at=at + expires_in,
    )


@dataclass
class World:
    """Service, scheduler and fakes over one in-memory store, at a manual time."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    store: PlanStore = field(default_factory=MemoryStore)
    accounts: StaticAccounts = field(default_factory=StaticAccounts)
    script: dict[tuple[str, int | None], Outcome] = field(default_factory=dict)
    settings: SchedulerSettings = field(
        default_factory=lambda: SchedulerSettings(worker_id="test-worker", strict=True)
    )

    def __post_init__(self) -> None:
        self.store.init()
        self.runtime = runtime()
        self.service = PlanService(self.store, self.runtime, self.accounts, self.clock)
        self.executor = MemoryExecutor(self.clock, self.script)
        self.scheduler = Scheduler(self.service, self.executor, self.settings)

    # -- setting up ------------------------------------------------------------

    def eligible(self, account_id: str, **kwargs: Any) -> None:
        """Give the account facts under which its renewal may be defended."""
        account, signals = account_facts(account_id, **kwargs)
        self.accounts.set(TENANT, account_id, account, signals)

    def update_account(self, account_id: str, **changes: Any) -> None:
        """Change account fields (``renewal_status=...`` sets ``renewal.status``)."""
        account, signals = self.accounts.snapshot(TENANT, account_id, self.clock.now())
        account = dict(account)
        signals = dict(signals)
        for name, value in changes.items():
            if name == "renewal_status":
                account["renewal"] = {**account.get("renewal", {}), "status": value}
            elif name in ("open_p1_tickets", "open_tickets", "meeting_booked"):
                signals[name] = value
            elif value is None:
                account.pop(name, None)
            else:
                account[name] = value
        self.accounts.set(TENANT, account_id, account, signals)

    def approved_plan(self, account_id: str = "acct-1", **kwargs: Any) -> RevenuePlanV1:
        """Create a plan as ``AE`` and have ``DIRECTOR`` approve it."""
        plan = self.service.create(make_plan(account_id, at=self.clock.now(), **kwargs), AE)
        return self.service.approve(TENANT, plan.plan_id, DIRECTOR, "go")

    # -- running ---------------------------------------------------------------

    def tick(self, advance: timedelta | None = None) -> TickSummary:
        """Move the clock (optionally) and run one pass."""
        if advance is not None:
            self.clock.advance(advance)
        return self.scheduler.tick(self.clock.now())

    def run(self, hours: int, every: timedelta = timedelta(hours=1)) -> list[TickSummary]:
        """Tick every ``every`` for ``hours`` hours."""
        summaries = []
        end = self.clock.now() + timedelta(hours=hours)
        while self.clock.now() < end:
            summaries.append(self.tick(every))
        return summaries

    # -- reading ---------------------------------------------------------------

    def plan(self, plan_id: str) -> RevenuePlanV1:
        """The stored plan."""
        return self.store.get_plan(TENANT, plan_id)

    def step(self, plan_id: str, action_type: str) -> Any:
        """A step of the stored plan by action type."""
        step = self.plan(plan_id).step_by_action(action_type)
        assert step is not None
        return step

    def ledger(self, plan_id: str) -> list[LedgerEntry]:
        """The plan's ledger; asserts its hash chain is intact."""
        entries = self.store.ledger(TENANT, plan_id)
        assert verify_chain(entries) == []
        return entries

    def events(self, plan_id: str) -> list[str]:
        """The plan's ledger events, oldest first."""
        return [e.event.value for e in self.ledger(plan_id)]

    def executions(self, plan_id: str, action_type: str) -> int:
        """Effective executions of one step over all its attempts."""
        step = self.step(plan_id, action_type)
        prefix = f"{plan_id}:{step.step_id}:"
        return sum(
            n for key, n in self.executor.effective_executions.items() if key.startswith(prefix)
        )
