"""The simulation's ledgers equal those of a real poll loop over the same inputs.

The reference is the production tick code path run the plain way: the
orchestrator's ``Scheduler.tick`` at **every** tick time of the interval
(no time skipping, no skipped polls), people's commands through
``PlanService`` at their times, over a real SQLite store (and over the plain
in-memory store), with the same account timeline and scripted execution
service. Ledgers, plan records and attempt records must be equal byte for
byte: plan versions, fence tokens and hash chains included.
"""

from __future__ import annotations

import random
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.adapters.memory import MemoryStore
from orchestrator.clock import ManualClock
from orchestrator.policy import PolicyRuntime
from orchestrator.ports import PlanStore
from orchestrator.scheduler import Scheduler, SchedulerSettings
from orchestrator.service import PlanService
from orchestrator.stores import open_store
from planpolicy import PolicyBundle, load_bundle
from planpolicy.plan import ReadOnlyList, RevenuePlanV1
from planpolicy.scenario import Scenario, load_scenario
from planpolicy.simulate import WORKER, RunResult, SimOptions, apply_event, events, run
from planpolicy.simworld import ScriptedExecutor, SkippingStore, TimelineAccounts

from .conftest import EXAMPLES, REPO

HERE = Path(__file__).parent
BUSY = HERE / "scenarios" / "busy_week.yaml"

Trace = dict[str, tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]]


def real_loop(
    scenario: Scenario,
    bundle: PolicyBundle,
    store: PlanStore,
    *,
    tick: timedelta = timedelta(minutes=5),
    seed: str = "0/0",
) -> Trace:
    """Tick at every interval over the horizon; commands and proposals at their own times."""
    clock = ManualClock(scenario.start)
    accounts = TimelineAccounts(scenario.tenant, scenario.accounts, scenario.changes)
    executor = ScriptedExecutor(clock, scenario.script, seed=seed)
    service = PlanService(store, PolicyRuntime(bundle), accounts, clock)
    scheduler = Scheduler(service, executor, SchedulerSettings(worker_id=WORKER))
    pending = events(scenario)
    position = 0
    now = scenario.start
    while now <= scenario.end:
        while position < len(pending) and pending[position].at <= now:
            clock.set(pending[position].at)
            apply_event(service, scenario, pending[position])
            position += 1
        clock.set(now)
        summary = scheduler.tick(now)
        assert not summary.problems
        now += tick
    tenant = scenario.tenant
    return {
        p.plan.plan_id: (
            [e.model_dump(mode="json") for e in store.ledger(tenant, p.plan.plan_id)],
            store.get_plan(tenant, p.plan.plan_id).model_dump(mode="json"),
            [a.model_dump(mode="json") for a in store.list_attempts(tenant, p.plan.plan_id)],
        )
        for p in scenario.plans
    }


def simulated(result: RunResult) -> Trace:
    return {
        p.plan_id: ([dict(e) for e in p.ledger], dict(p.record), [dict(a) for a in p.attempts])
        for p in result.plans
    }


def assert_same(expected: Trace, actual: Trace) -> None:
    assert expected.keys() == actual.keys()
    for plan_id, (ledger, record, attempts) in expected.items():
        got_ledger, got_record, got_attempts = actual[plan_id]
        for want, got in zip(ledger, got_ledger, strict=False):
            assert want == got, f"{plan_id}: ledger entry {want['seq']} differs"
        assert len(ledger) == len(got_ledger), f"{plan_id}: ledger length"
        assert record == got_record, f"{plan_id}: plan record differs"
        assert attempts == got_attempts, f"{plan_id}: attempts differ"


def test_the_busy_week_exercises_what_it_claims(bundle: PolicyBundle) -> None:
    result = run(load_scenario(BUSY, bundle), bundle)
    events_seen = {i.event for i in result.timeline}
    assert {"activation_rejected", "paused", "resumed", "aborted", "expired", "completed"} <= (
        events_seen
    )
    assert {"note", "skipped", "retried", "approve refused", "facts"} <= events_seen
    assert result.stats.idle_looks_skipped > 100


def test_simulation_equals_a_tick_loop_over_sqlite(bundle: PolicyBundle, tmp_path: Path) -> None:
    scenario = load_scenario(BUSY, bundle)
    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}?synchronous=normal")
    store.init()
    try:
        reference = real_loop(scenario, bundle, store)
    finally:
        store.close()
    assert_same(reference, simulated(run(scenario, bundle)))


@pytest.mark.parametrize("minutes", [5, 15, 7])
def test_time_skipping_equals_ticking_every_interval(bundle: PolicyBundle, minutes: int) -> None:
    # 7 minutes does not divide the hourly recheck: no poll is skipped, only empty ticks.
    scenario = load_scenario(BUSY, bundle)
    tick = timedelta(minutes=minutes)
    store = MemoryStore()
    store.init()
    reference = real_loop(scenario, bundle, store, tick=tick)
    result = run(scenario, bundle, SimOptions(tick=tick))
    assert_same(reference, simulated(result))
    assert result.stats.ticks < result.stats.ticks_modelled / 4


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_equal_their_exact_runs(bundle: PolicyBundle, path: Path) -> None:
    scenario = load_scenario(path, bundle)
    fast = run(scenario, bundle)
    exact = run(scenario, bundle, SimOptions(exact=True))
    assert_same(simulated(exact), simulated(fast))
    assert fast.stats.ticks * 20 < exact.stats.ticks
    assert fast.stats.idle_looks_skipped > 500


def test_a_rule_that_reads_now_is_rechecked_every_hour(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    """An objective that depends on the time cannot be skipped: the result still matches."""
    for name in ("policies", "plan_types"):
        shutil.copytree(REPO / name, tmp_path / name)
    plan_type = tmp_path / "plan_types" / "renewal_defense.yaml"
    text = plan_type.read_text()
    old = '        expr: account.renewal.status == "RENEWED"\n'
    assert old in text
    plan_type.write_text(
        text.replace(
            old,
            old + "      - id: two_days_in\n"
            '        expr: now - plan.activated_at > duration("51h")\n',
        )
    )
    timed = load_bundle([str(tmp_path / "policies"), str(tmp_path / "plan_types")])
    scenario = load_scenario(BUSY, timed)
    store = MemoryStore()
    store.init()
    reference = real_loop(scenario, timed, store)
    result = run(scenario, timed)
    assert_same(reference, simulated(result))
    assert {p.completion_reason for p in result.plans} >= {"objective_met"}


OUTCOMES = [
    "outcome: succeed",
    "outcome: fail, error: refused",
    "outcome: timeout",
    "outcome: pending, pending_for: 95m",
    "outcome: pending, pending_for: 2d, then: fail",
    "outcome: succeed, probability: 0.5",
]
COMMANDS = [
    "do: pause, by: alice",
    "do: resume, by: dana",
    "do: resume, by: alice",
    "do: abort, by: mia",
    "do: approve_step, step: ESCALATE_SUPPORT_RISK, by: mia",
    "do: pause, by: mia",
]
ACTIONS = ["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING", "ESCALATE_SUPPORT_RISK"]


def _at(minutes: int) -> str:
    return f"day {minutes // 1440} {minutes % 1440 // 60:02d}:{minutes % 60:02d}"


def random_scenario(seed: int) -> str:
    """Two plans over six days with random outcomes, commands and changes of facts."""
    rng = random.Random(seed)
    minute = lambda low=0: rng.randrange(low, 6 * 1440)  # noqa: E731
    lines = [
        "apiVersion: planpolicy/v1",
        "kind: Scenario",
        f"metadata: {{name: random-{seed}}}",
        "spec:",
        "  start: 2026-01-05T00:00:00Z",
        "  horizon_days: 6",
        "  people: {alice: [account_executive], mia: [revenue_manager], dana: [revenue_director]}",
        "  accounts:",
    ]
    for account in ("acme", "globex"):
        lines += [
            f"    {account}:",
            "      account: {renewal_date: 2026-03-20T00:00:00Z, renewal: {status: AT_RISK}}",
            f"      signals: {{open_p1_tickets: {rng.randrange(3)}}}",
        ]
    lines.append("  plans:")
    starts = {}
    for plan, account in (("a", "acme"), ("b", rng.choice(["acme", "globex"]))):
        starts[plan] = minute() // 4
        lines.append(
            f"    - {{id: {plan}, plan_type: RENEWAL_DEFENSE, account: {account}, owner: alice, "
            f"at: {_at(starts[plan])}, expires_in_days: {rng.randrange(3, 7)}}}"
        )
    lines.append("  executor:")
    lines.append("    - {action: PREP_RENEWAL_BRIEF, attempt: 9, outcome: succeed}")
    for action, attempt in {
        (rng.choice(ACTIONS), rng.randrange(1, 4)) for _ in range(rng.randrange(5))
    }:
        lines.append(f"    - {{action: {action}, attempt: {attempt}, {rng.choice(OUTCOMES)}}}")
    lines.append("  actions:")
    for plan in ("a", "b"):
        lines.append(
            f"    - {{at: {_at(minute(starts[plan]))}, plan: {plan}, do: approve, by: dana}}"
        )
        for _ in range(rng.randrange(4)):
            lines.append(
                f"    - {{at: {_at(minute(starts[plan]))}, plan: {plan}, {rng.choice(COMMANDS)}}}"
            )
    lines.append("  timeline:")
    lines.append("    - {at: day 0, account: acme, set: {signals.usage_trend: 0.0}}")
    for _ in range(rng.randrange(6)):
        account = rng.choice(["acme", "globex"])
        if rng.random() < 0.25:
            change = "account.renewal.status: RENEWED"
        else:
            change = f"signals.open_p1_tickets: {rng.randrange(3)}"
        lines.append(f"    - {{at: {_at(minute())}, account: {account}, set: {{{change}}}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(24))
def test_skipping_idle_polls_never_changes_a_ledger(
    bundle: PolicyBundle, tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(random_scenario(seed))
    scenario = load_scenario(path, bundle)
    exact = run(scenario, bundle, SimOptions(exact=True))
    fast = run(scenario, bundle)
    assert_same(simulated(exact), simulated(fast))


def test_the_skipping_stores_views_are_sealed_and_reused_only_when_unchanged(
    bundle: PolicyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan with idle looks applied is handed out again only while it would be made the same."""
    made = SkippingStore._view
    handed_out: list[RevenuePlanV1] = []
    reused = 0

    def checked(self: SkippingStore, plan: RevenuePlanV1, track: Any) -> RevenuePlanV1:
        nonlocal reused
        last = track.view if track is not None else None
        if track is not None:
            track.view = None  # what the view would be without the one kept
        fresh = made(self, plan, track)
        if track is not None:
            track.view = last
        view = made(self, plan, track)
        assert view.model_dump(mode="json") == fresh.model_dump(mode="json")
        assert type(view.steps) is ReadOnlyList  # shared with the inner store: sealed
        if last is not None and view is last[2]:
            reused += 1
        handed_out.append(view)
        return view

    monkeypatch.setattr(SkippingStore, "_view", checked)
    result = run(load_scenario(BUSY, bundle), bundle)
    assert result.stats.idle_looks_skipped > 100
    assert reused > 10  # a poll's second read in a turn gets the view of its first
    with pytest.raises(ValidationError, match="frozen"):
        handed_out[-1].version = 1  # type: ignore[misc]
