"""Dry-run plans over virtual time with the production engine and orchestrator.

A simulation runs the **same** code as production: plans are created and
commanded through the orchestrator's :class:`~orchestrator.service.PlanService`
and advanced by its :class:`~orchestrator.scheduler.Scheduler` ``tick``, which
consult the policy gate, the state evaluator and the lifecycle of the compiled
bundle. Only the world around them is simulated (:mod:`planpolicy.simworld`):
an in-memory store, a scripted execution service, account facts that change
on a timeline, and a virtual clock. Nothing simulation-only decides anything.

Time skipping
-------------
A real deployment polls every ``tick`` (five minutes by default). The
simulation ticks only at the tick times (``start + k * tick``) where some plan
is due, and applies people's commands and new plans at their own times in
between, so its cost grows with events, not with ticks; idle polls are
skipped as :mod:`planpolicy.simworld` explains. The ledgers equal a real poll
loop's at the same interval, byte for byte (``tests/simulate`` checks it
against the ``plan-orchestrator tick --now`` command over SQLite and against
a loop that ticks at every interval).

Several processes
-----------------
Plans of different accounts never meet, so a large run is split by account
over forked processes and merged into the result one process gives
(:mod:`planpolicy.simsplit` says when and why that is exact).
``SimOptions.jobs`` chooses how many; ``--exact`` runs stay in one process,
as the reference the others are compared with.

This module imports :mod:`orchestrator` lazily, inside the functions that run
a simulation, so that the engine does not depend on the service to load.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from planpolicy.collector import long_operation
from planpolicy.scenario import (
    Expectation,
    HumanAction,
    Scenario,
    ScenarioPlan,
    ceil_to_grid,
    describe_time,
)

if TYPE_CHECKING:
    from orchestrator.scheduler import SchedulerSettings
    from orchestrator.service import PlanService
    from planpolicy.model import PolicyBundle
    from planpolicy.simworld import SkippingStore

__all__ = [
    "DEFAULT_TICK",
    "WORKER",
    "CompareResult",
    "Divergence",
    "ExpectationResult",
    "MonteCarloResult",
    "PlanDistribution",
    "PlanResult",
    "Refusal",
    "RunResult",
    "RunStats",
    "SimOptions",
    "StepResult",
    "TimelineItem",
    "apply_event",
    "check_expectations",
    "compare",
    "events",
    "monte_carlo",
    "run",
]

DEFAULT_TICK = timedelta(minutes=5)
_MICROSECOND = timedelta(microseconds=1)
WORKER = "simulation"
"""The scheduler's worker id in simulations (it appears in ledger evidence)."""

TERMINAL = ("COMPLETED", "ABORTED", "EXPIRED")
_ENTERED = {"APPROVED": "approved", "ACTIVE": "activated", "PAUSED": "paused"}


@dataclass(frozen=True)
class SimOptions:
    """How to run: the poll interval modelled, the seed, every idle poll or not, processes."""

    tick: timedelta = DEFAULT_TICK
    seed: int = 0
    run: int = 0
    exact: bool = False
    progress: Callable[[float], None] | None = None
    jobs: int = 0  # processes: 0 auto (see planpolicy.simsplit), 1 this one only

    @property
    def seed_key(self) -> str:
        """The seed of this run's draws: ``seed/run``."""
        return f"{self.seed}/{self.run}"


@dataclass(frozen=True)
class TimelineItem:
    """One line of the timeline: a ledger entry, a change of facts, or a refused command."""

    time: datetime
    kind: str  # ledger | facts | refused
    event: str
    reason: str
    plan_id: str | None = None
    account_id: str | None = None
    actor: str | None = None
    step: str | None = None
    attempt: int | None = None

    def as_dict(self, start: datetime) -> dict[str, Any]:
        """JSON data, with the time also as ``day N HH:MM`` from ``start``."""
        return {
            "time": self.time.isoformat(),
            "day": describe_time(start, self.time),
            "kind": self.kind,
            "plan": self.plan_id,
            "account": self.account_id,
            "event": self.event,
            "actor": self.actor,
            "step": self.step,
            "attempt": self.attempt,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class StepResult:
    """A step at the horizon."""

    step_id: str
    action_type: str
    status: str
    attempts: int
    human_touch: bool
    approved_by: str | None
    skip_reason: str | None
    last_error: str | None


@dataclass(frozen=True)
class PlanResult:
    """A plan at the horizon, with the ledger and attempt records it would have."""

    plan_id: str
    account_id: str
    plan_type: str
    status: str
    completion_reason: str | None
    created_at: datetime
    ended_at: datetime | None
    steps: tuple[StepResult, ...]
    record: Mapping[str, Any]
    ledger: tuple[Mapping[str, Any], ...]
    attempts: tuple[Mapping[str, Any], ...]

    def step(self, action_type: str) -> StepResult | None:
        """The first step of this action type."""
        return next((s for s in self.steps if s.action_type == action_type), None)

    @property
    def ended(self) -> bool:
        """In a terminal state at the horizon."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Refusal:
    """A command the service refused (authority, an invalid transition, the gate)."""

    time: datetime
    plan_id: str
    command: str
    by: str
    message: str


@dataclass(frozen=True)
class ExpectationResult:
    """An expectation and whether it held; ``actual`` says what happened."""

    expectation: Expectation
    passed: bool
    actual: str


@dataclass(frozen=True)
class RunStats:
    """What the run cost."""

    ticks: int  # ticks actually run
    ticks_modelled: int  # ticks of a real loop over the horizon
    plan_turns: int  # plans looked at by those ticks
    idle_looks_skipped: int
    executions: int  # effective executions of the execution service
    seconds: float


@dataclass(frozen=True)
class RunResult:
    """One simulated run."""

    scenario: Scenario
    tick: timedelta
    seed: int
    run: int
    exact: bool
    bundle_digest: str
    versions: Mapping[str, int]
    plans: tuple[PlanResult, ...]
    timeline: tuple[TimelineItem, ...]
    refusals: tuple[Refusal, ...]
    expectations: tuple[ExpectationResult, ...]
    stats: RunStats

    @property
    def ok(self) -> bool:
        """Every expectation held."""
        return all(r.passed for r in self.expectations)

    def plan(self, plan_id: str) -> PlanResult:
        """The plan with this id."""
        return next(p for p in self.plans if p.plan_id == plan_id)


# --- events between ticks ----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class _Event:
    at: datetime
    rank: int  # plans are proposed before commands at the same time
    index: int
    plan: ScenarioPlan | None = field(default=None, compare=False)
    action: HumanAction | None = field(default=None, compare=False)


def events(scenario: Scenario) -> list[_Event]:
    """Plan proposals and people's commands, in the order they happen."""
    out = [_Event(p.at, 0, i, plan=p) for i, p in enumerate(scenario.plans)]
    out += [_Event(a.at, 1, i, action=a) for i, a in enumerate(scenario.actions)]
    return sorted(out)


def apply_event(service: PlanService, scenario: Scenario, event: _Event) -> Refusal | None:
    """Apply one proposal or command through the service; a refusal is returned, not raised."""
    from orchestrator.errors import StoreError
    from planpolicy.authority import Actor
    from planpolicy.lifecycle import LifecycleError

    if event.plan is not None:
        who = event.plan.created_by
        roles = scenario.people.get(who)
        actor = Actor(who, roles) if roles is not None else Actor.system(who)
        service.create(event.plan.plan, actor)
        return None
    action = event.action
    assert action is not None
    actor = Actor(action.by, action.roles)
    tenant = scenario.tenant
    reason = action.reason
    try:
        if action.do == "approve":
            service.approve(tenant, action.plan_id, actor, reason)
        elif action.do == "approve_step":
            plan = service.get(tenant, action.plan_id)
            step = plan.step_by_action(action.step or "")
            assert step is not None  # the scenario was checked
            service.approve_step(tenant, action.plan_id, step.step_id, actor, reason)
        else:
            command = getattr(service, action.do)
            command(tenant, action.plan_id, actor, reason or f"{action.do} (no reason given)")
    except LifecycleError as exc:
        return Refusal(action.at, action.plan_id, action.do, action.by, str(exc))
    except StoreError as exc:
        return Refusal(action.at, action.plan_id, action.do, action.by, exc.message)
    return None


# --- one run ------------------------------------------------------------------------------


def run(scenario: Scenario, bundle: PolicyBundle, options: SimOptions | None = None) -> RunResult:
    """Run ``scenario`` under ``bundle`` and check its expectations."""
    # a run allocates lasting objects (records, ledgers) and next to no cyclic garbage
    with long_operation(pause=True):
        return _run(scenario, bundle, options)


def _run(scenario: Scenario, bundle: PolicyBundle, options: SimOptions | None) -> RunResult:
    from orchestrator.scheduler import SchedulerSettings
    from planpolicy import simsplit

    options = options or SimOptions()
    began = time.perf_counter()
    settings = SchedulerSettings(worker_id=WORKER)
    pending = events(scenario)
    jobs = 1
    if not options.exact:  # the reference run: every look, one process
        jobs = simsplit.usable_jobs(options.jobs, len(scenario.plans), settings.max_plans_per_tick)
    groups = _split_events(scenario, pending, jobs) if jobs > 1 else [pending]
    parts: list[_Part] = []
    if len(groups) > 1:
        quiet = replace(options, progress=None)  # one bar: this process's share
        parts = simsplit.run_groups(
            [
                partial(_run_part, scenario, bundle, options if i == 0 else quiet, settings, group)
                for i, group in enumerate(groups)
            ]
        )
        if any(part.overdue for part in parts):  # plans could have met: not exact apart
            parts = []
    if not parts:
        parts = [_run_part(scenario, bundle, options, settings, pending)]
    return _assemble(scenario, bundle, options, parts, began)


def _split_events(scenario: Scenario, pending: list[_Event], jobs: int) -> list[list[_Event]]:
    """The events in groups of whole accounts, balanced by their number of events."""
    from planpolicy import simsplit

    account_of = {p.plan.plan_id: p.plan.account_id for p in scenario.plans}
    owners = [
        e.plan.plan.account_id
        if e.plan is not None
        else account_of.get(e.action.plan_id if e.action is not None else "", "")
        for e in pending
    ]
    groups = simsplit.account_groups(Counter(owners), jobs)
    where = {account: index for index, group in enumerate(groups) for account in group}
    out: list[list[_Event]] = [[] for _ in groups]
    for event, owner in zip(pending, owners, strict=True):
        out[where[owner]].append(event)
    return out


@dataclass(frozen=True)
class _Part:
    """What one process's share of a run gives: its plans, refusals and counts."""

    plans: dict[str, PlanResult]
    refusals: list[tuple[tuple[datetime, int, int], Refusal]]  # (event order, refusal)
    ticks: list[datetime]
    turns: int
    skipped: int
    executions: int
    overdue: bool  # a plan was due before the moment just run (see _run_part)


def _run_part(
    scenario: Scenario,
    bundle: PolicyBundle,
    options: SimOptions,
    settings: SchedulerSettings,
    pending: list[_Event],
) -> _Part:
    """Run the plans and commands of ``pending`` (whole accounts) to the horizon.

    ``overdue`` tells whether a plan's due tick was ever already past: a
    plan left due at a tick just run, or a command making a plan due before
    the tick before the command. Then, and only then, one plan's timing can
    depend on other plans: the next tick follows the last one run (of any
    plan), and a tick that meets a page of plans still due leaves the rest
    for later. A split run whose parts were never overdue equals the run in
    one process.
    """
    from orchestrator.clock import ManualClock
    from orchestrator.policy import PolicyRuntime
    from orchestrator.scheduler import Scheduler
    from orchestrator.service import PlanService
    from planpolicy.simworld import ScriptedExecutor, SkippingStore, TimelineAccounts

    tick = options.tick
    start, end = scenario.start, scenario.end
    clock = ManualClock(start)
    runtime = PolicyRuntime(bundle)
    accounts = TimelineAccounts(scenario.tenant, scenario.accounts, scenario.changes)
    executor = ScriptedExecutor(clock, scenario.script, seed=options.seed_key)
    store = SkippingStore(
        clock=clock,
        runtime=runtime,
        start=start,
        tick=tick,
        recheck=settings.recheck,
        pending_poll=settings.pending_poll,
        max_plans_per_tick=settings.max_plans_per_tick,
        next_change=accounts.next_change,
        pending_until=executor.pending_until,
        elide=not options.exact,
    )
    store.init()
    service = PlanService(store, runtime, accounts, clock)
    scheduler = Scheduler(service, executor, settings)

    position = 0
    refusals: list[tuple[tuple[datetime, int, int], Refusal]] = []
    ticks: list[datetime] = []
    last: datetime | None = None
    turns = 0
    span = (end - start).total_seconds() or 1.0
    overdue = False
    moment: datetime | None = None  # the event just applied, or just after the tick run
    while True:
        due = store.next_due()
        next_tick = None
        if due is not None:
            next_tick = ceil_to_grid(due, start, tick)
            if moment is not None and next_tick < moment:
                overdue = True  # its tick is past: the next one follows the last run
            if last is not None:
                next_tick = max(next_tick, last + tick)
        if position < len(pending) and (next_tick is None or pending[position].at <= next_tick):
            event = pending[position]
            position += 1
            clock.set(event.at)
            refusal = apply_event(service, scenario, event)
            if refusal is not None:
                refusals.append(((event.at, event.rank, event.index), refusal))
            moment = event.at
            continue
        if next_tick is None or next_tick > end:
            break
        clock.set(next_tick)
        summary = scheduler.tick(next_tick)
        ticks.append(next_tick)
        turns += summary.due
        last = next_tick
        moment = next_tick + _MICROSECOND  # still due at the tick: overdue
        if options.progress is not None:
            options.progress((next_tick - start).total_seconds() / span)
    last_tick = start + ((end - start) // tick) * tick
    store.finish(last_tick)
    if options.progress is not None:
        options.progress(1.0)
    kept = [e.plan for e in pending if e.plan is not None]
    return _Part(
        plans={p.plan.plan_id: _plan_result(store, scenario, p) for p in kept},
        refusals=refusals,
        ticks=ticks,
        turns=turns,
        skipped=store.skipped,
        executions=sum(executor.effective_executions.values()),
        overdue=overdue,
    )


def _assemble(
    scenario: Scenario,
    bundle: PolicyBundle,
    options: SimOptions,
    parts: Sequence[_Part],
    began: float,
) -> RunResult:
    """The run's result from its parts: plans in the scenario's order, refusals in the events'."""
    found: dict[str, PlanResult] = {}
    for part in parts:
        found.update(part.plans)
    plans = tuple(found[p.plan.plan_id] for p in scenario.plans)
    keyed = sorted((pair for part in parts for pair in part.refusals), key=lambda pair: pair[0])
    refusals = [refusal for _key, refusal in keyed]
    timeline = _timeline(scenario, plans, refusals)
    expectations = check_expectations(scenario, plans, refusals)
    start, end, tick = scenario.start, scenario.end, options.tick
    ticks = parts[0].ticks if len(parts) == 1 else sorted({t for p in parts for t in p.ticks})
    stats = RunStats(
        ticks=len(ticks),
        ticks_modelled=(end - start) // tick + 1,
        plan_turns=sum(p.turns for p in parts),
        idle_looks_skipped=sum(p.skipped for p in parts),
        executions=sum(p.executions for p in parts),
        seconds=time.perf_counter() - began,
    )
    return RunResult(
        scenario=scenario,
        tick=tick,
        seed=options.seed,
        run=options.run,
        exact=options.exact,
        bundle_digest=bundle.digest,
        versions=bundle.versions(),
        plans=plans,
        timeline=timeline,
        refusals=tuple(refusals),
        expectations=tuple(expectations),
        stats=stats,
    )


def _plan_result(store: SkippingStore, scenario: Scenario, item: ScenarioPlan) -> PlanResult:
    tenant, plan_id = scenario.tenant, item.plan.plan_id
    plan = store.get_plan(tenant, plan_id)
    steps = tuple(
        StepResult(
            step_id=str(s.step_id),
            action_type=s.action_type,
            status=s.status.value,
            attempts=s.attempts,
            human_touch=s.human_touch,
            approved_by=s.human_approved_by,
            skip_reason=s.skip_reason,
            last_error=s.last_error,
        )
        for s in plan.steps
    )
    return PlanResult(
        plan_id=plan_id,
        account_id=plan.account_id,
        plan_type=plan.plan_type,
        status=plan.status,
        completion_reason=plan.completion_reason,
        created_at=plan.created_at,
        ended_at=plan.ended_at,
        steps=steps,
        record=plan.model_dump(mode="json"),
        # the ledger as `store.ledger` gives it, dumped as JSON, without decoding each entry
        ledger=tuple(store.ledger_data(tenant, plan_id)),
        attempts=tuple(a.model_dump(mode="json") for a in store.list_attempts(tenant, plan_id)),
    )


def _timeline(
    scenario: Scenario, plans: Sequence[PlanResult], refusals: Sequence[Refusal]
) -> tuple[TimelineItem, ...]:
    keyed: list[tuple[tuple[datetime, int, int, int], TimelineItem]] = []
    for index, change in enumerate(scenario.changes):
        item = TimelineItem(
            change.at, "facts", "facts", change.describe(), account_id=change.account
        )
        keyed.append(((change.at, 0, index, 0), item))
    for index, refusal in enumerate(refusals):
        item = TimelineItem(
            refusal.time,
            "refused",
            f"{refusal.command} refused",
            refusal.message,
            plan_id=refusal.plan_id,
            actor=refusal.by,
        )
        keyed.append(((refusal.time, 1, index, 0), item))
    times: dict[str, datetime] = {}  # the entries of one turn share their time
    for order, plan in enumerate(plans):
        actions = {s.step_id: s.action_type for s in plan.steps}
        for entry in plan.ledger:
            text = str(entry["time"])
            at = times.get(text)
            if at is None:
                at = times[text] = datetime.fromisoformat(text)
            step = actions.get(str(entry.get("step_id"))) if entry.get("step_id") else None
            item = TimelineItem(
                at,
                "ledger",
                str(entry["event"]),
                str(entry.get("reason") or ""),
                plan_id=plan.plan_id,
                account_id=plan.account_id,
                actor=str(entry["actor"]),
                step=step,
                attempt=entry.get("attempt"),
            )
            keyed.append(((at, 2, order, int(entry["seq"])), item))
    keyed.sort(key=lambda pair: pair[0])
    return tuple(item for _key, item in keyed)


# --- expectations -------------------------------------------------------------------------


def _in_window(at: datetime, exp: Expectation) -> bool:
    return (exp.after is None or at >= exp.after) and (exp.before is None or at < exp.before)


def check_expectations(
    scenario: Scenario, plans: Sequence[PlanResult], refusals: Sequence[Refusal]
) -> list[ExpectationResult]:
    """Each expectation of the scenario against the plans at the horizon."""
    by_id = {p.plan_id: p for p in plans}
    return [_check(scenario, exp, by_id[exp.plan_id], refusals) for exp in scenario.expectations]


def _entries(plan: PlanResult, event: str) -> list[tuple[datetime, Mapping[str, Any]]]:
    return [(datetime.fromisoformat(str(e["time"])), e) for e in plan.ledger if e["event"] == event]


def _check(
    scenario: Scenario, exp: Expectation, plan: PlanResult, refusals: Sequence[Refusal]
) -> ExpectationResult:
    when = scenario.when
    if exp.kind == "end":
        reason = f" ({plan.completion_reason})" if plan.completion_reason else ""
        since: datetime | None = plan.ended_at
        if plan.status in _ENTERED:
            entered = _entries(plan, _ENTERED[plan.status]) or _entries(plan, "resumed")
            since = max((at for at, _ in entered), default=None)
        actual = f"it is {plan.status}{reason}" + (f" since {when(since)}" if since else "")
        if plan.ended:
            actual = f"it ended {plan.status}{reason} on {when(plan.ended_at or plan.created_at)}"
        ok = plan.status == exp.status and (
            exp.reason is None or exp.reason == plan.completion_reason
        )
        if ok and (exp.before or exp.after):
            ok = since is not None and _in_window(since, exp)
        return ExpectationResult(exp, ok, actual)
    if exp.kind == "step":
        step = plan.step(exp.step or "")
        assert step is not None
        intents = [
            at for at, e in _entries(plan, "step_intent") if e.get("step_id") == step.step_id
        ]
        counted = [at for at in intents if _in_window(at, exp)]
        ok = True
        if exp.runs is not None:
            ok = ok and bool(counted) == exp.runs
        if exp.attempts is not None:
            ok = ok and len(counted) == exp.attempts
        if exp.step_status is not None:
            ok = ok and step.status == exp.step_status
        first = f", first on {when(counted[0])}" if counted else ""
        window = " in that window" if exp.before or exp.after else ""
        actual = (
            f"it was dispatched {len(counted)} time{'s' if len(counted) != 1 else ''}{window}"
            f"{first}; it is {step.status}"
        )
        return ExpectationResult(exp, ok, actual)
    if exp.kind == "ledger":
        found = [
            at
            for at, e in _entries(plan, exp.event or "")
            if _in_window(at, exp)
            and (exp.contains is None or exp.contains.lower() in str(e.get("reason", "")).lower())
        ]
        ok = len(found) == exp.count if exp.count is not None else bool(found)
        times = ", ".join(when(at) for at in found[:3]) + (", ..." if len(found) > 3 else "")
        actual = f"{len(found)} matching `{exp.event}` entr{'y' if len(found) == 1 else 'ies'}"
        return ExpectationResult(exp, ok, actual + (f" ({times})" if found else ""))
    found_refusals = [
        r
        for r in refusals
        if r.plan_id == plan.plan_id and r.command == exp.command and _in_window(r.time, exp)
    ]
    ok = len(found_refusals) == exp.count if exp.count is not None else bool(found_refusals)
    actual = f"{len(found_refusals)} refused"
    if found_refusals:
        actual += f" (first on {when(found_refusals[0].time)}: {found_refusals[0].message})"
    return ExpectationResult(exp, ok, actual)


# --- many runs: Monte Carlo ------------------------------------------------------------------


@dataclass(frozen=True)
class PlanDistribution:
    """How one plan ended over many runs, and how long it took."""

    plan_id: str
    ends: Mapping[str, int]  # "COMPLETED (objective_met)" -> runs
    days_to_end: tuple[float, ...]  # for the runs in which it ended, sorted

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the days to end (nearest rank), ``None`` if it never ended."""
        if not self.days_to_end:
            return None
        index = min(len(self.days_to_end) - 1, max(0, round(q * (len(self.days_to_end) - 1))))
        return self.days_to_end[index]

    @property
    def median(self) -> float | None:
        """The median days to end, ``None`` if it never ended."""
        return statistics.median(self.days_to_end) if self.days_to_end else None


@dataclass(frozen=True)
class MonteCarloResult:
    """Many runs of one scenario with different draws of its probabilistic outcomes."""

    scenario: Scenario
    runs: int
    seed: int
    tick: timedelta
    bundle_digest: str
    plans: tuple[PlanDistribution, ...]
    overall: PlanDistribution  # every plan of every run
    expectations: tuple[tuple[Expectation, int], ...]  # runs in which each held
    failures: tuple[tuple[int, ExpectationResult], ...]  # (run, first failure) examples
    seconds: float

    @property
    def ok(self) -> bool:
        """Every expectation held in every run."""
        return all(held == self.runs for _exp, held in self.expectations)


def _end_label(plan: PlanResult) -> str:
    return plan.status + (f" ({plan.completion_reason})" if plan.completion_reason else "")


_RunSummary = tuple[list[tuple[str, str, float | None]], tuple[ExpectationResult, ...]]
"""One run of a Monte Carlo: (plan id, end, days to end) per plan, and its expectations."""


def _run_summaries(
    scenario: Scenario, bundle: PolicyBundle, options: SimOptions, indices: range, jobs: int
) -> list[_RunSummary]:
    """Run ``scenario`` once per index (seed ``seed/index``) and summarize each run."""
    out: list[_RunSummary] = []
    for done, index in enumerate(indices, start=1):
        result = run(scenario, bundle, replace(options, run=index, progress=None, jobs=jobs))
        plan_ends = [
            (
                plan.plan_id,
                _end_label(plan),
                None
                if plan.ended_at is None
                else (plan.ended_at - plan.created_at).total_seconds() / 86400,
            )
            for plan in result.plans
        ]
        out.append((plan_ends, result.expectations))
        if options.progress is not None:
            options.progress(done / len(indices))
    return out


def monte_carlo(
    scenario: Scenario,
    bundle: PolicyBundle,
    runs: int,
    options: SimOptions | None = None,
) -> MonteCarloResult:
    """Run the scenario ``runs`` times (run ``i`` draws with seed ``seed/i``); deterministic.

    Runs are independent, so with several processes (``options.jobs``, see
    :mod:`planpolicy.simsplit`) each takes a contiguous share of them; the
    summaries are merged in run order, as one process makes them.
    """
    from planpolicy import simsplit

    options = options or SimOptions()
    began = time.perf_counter()
    # runs never meet: no tick limit applies to splitting them
    jobs = min(simsplit.usable_jobs(options.jobs, runs * len(scenario.plans), sys.maxsize), runs)
    if jobs > 1:
        bounds = [runs * k // jobs for k in range(jobs + 1)]
        shares = [range(bounds[k], bounds[k + 1]) for k in range(jobs)]
        quiet = replace(options, progress=None)
        summaries = [
            summary
            for part in simsplit.run_groups(
                [
                    partial(
                        _run_summaries, scenario, bundle, options if k == 0 else quiet, share, 1
                    )
                    for k, share in enumerate(shares)
                ]
            )
            for summary in part
        ]
    else:
        summaries = _run_summaries(scenario, bundle, options, range(runs), options.jobs)
    ends: dict[str, Counter[str]] = {p.plan.plan_id: Counter() for p in scenario.plans}
    days: dict[str, list[float]] = {p.plan.plan_id: [] for p in scenario.plans}
    held = [0] * len(scenario.expectations)
    failures: list[tuple[int, ExpectationResult]] = []
    progress = options.progress
    for index, (plan_ends, checks) in enumerate(summaries):
        for plan_id, label, took in plan_ends:
            ends[plan_id][label] += 1
            if took is not None:
                days[plan_id].append(took)
        for position, check in enumerate(checks):
            if check.passed:
                held[position] += 1
            elif len(failures) < 20:
                failures.append((index, check))
    if progress is not None:
        progress(1.0)
    plans = tuple(
        PlanDistribution(plan_id, dict(ends[plan_id]), tuple(sorted(days[plan_id])))
        for plan_id in ends
    )
    total: Counter[str] = Counter()
    for counter in ends.values():
        total.update(counter)
    overall = PlanDistribution(
        "all plans", dict(total), tuple(sorted(d for values in days.values() for d in values))
    )
    return MonteCarloResult(
        scenario=scenario,
        runs=runs,
        seed=options.seed,
        tick=options.tick,
        bundle_digest=bundle.digest,
        plans=plans,
        overall=overall,
        expectations=tuple(zip(scenario.expectations, held, strict=True)),
        failures=tuple(failures),
        seconds=time.perf_counter() - began,
    )


# --- two policy versions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """Where one plan's course (its ledger and refused commands) first differs under two bundles."""

    plan_id: str
    at: datetime | None
    index: int  # position in the plan's course (ledger entries and refused commands)
    left: TimelineItem | None
    right: TimelineItem | None
    left_end: str
    right_end: str


@dataclass(frozen=True)
class CompareResult:
    """The same scenario under two bundles, and the first divergence of each plan."""

    left: RunResult
    right: RunResult
    divergences: tuple[Divergence, ...]

    @property
    def ok(self) -> bool:
        """The expectations held under the first policies."""
        return self.left.ok


def _decision(item: TimelineItem) -> tuple[Any, ...]:
    """What a ledger line decides, without the policy digest and versions it names."""
    return (item.time, item.event, item.actor, item.step, item.attempt, item.reason)


def compare(
    scenario: Scenario,
    left: PolicyBundle,
    right: PolicyBundle,
    options: SimOptions | None = None,
    *,
    right_scenario: Scenario | None = None,
) -> CompareResult:
    """Run the scenario under both bundles (same seed) and find where each plan diverges.

    ``right_scenario`` is the scenario resolved against ``right`` (plans proposed
    with ``plan_type`` are written for each bundle's plan type version; plans
    from files are the same under both); by default ``scenario`` is used.
    """
    options = options or SimOptions()
    a = run(scenario, left, options)
    b = run(right_scenario or scenario, right, options)
    divergences = []
    for plan_a, plan_b in zip(a.plans, b.plans, strict=True):
        lines_a = [i for i in a.timeline if i.kind != "facts" and i.plan_id == plan_a.plan_id]
        lines_b = [i for i in b.timeline if i.kind != "facts" and i.plan_id == plan_b.plan_id]
        for index in range(max(len(lines_a), len(lines_b))):
            one = lines_a[index] if index < len(lines_a) else None
            two = lines_b[index] if index < len(lines_b) else None
            if one is None or two is None or _decision(one) != _decision(two):
                times = [i.time for i in (one, two) if i is not None]
                divergences.append(
                    Divergence(
                        plan_a.plan_id,
                        min(times) if times else None,
                        index,
                        one,
                        two,
                        _end_label(plan_a),
                        _end_label(plan_b),
                    )
                )
                break
    return CompareResult(a, b, tuple(divergences))
