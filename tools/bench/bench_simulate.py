"""Benchmark: `planpolicy simulate` with 1,000 RENEWAL_DEFENSE plans over 180 virtual days.

Generates a scenario (1,000 accounts, each with a plan proposed during the
first 60 days and approved a few hours later; probabilistic outcomes for every
step, some pending for days; renewals won, lost or still open; P1 tickets
that come and go; approvals of the HIGH-risk escalation step), then times:

- the simulation in process (loading the scenario and running it), median of
  ``--runs`` runs; target: under 5 s. A run of this size is split by account
  over one process per CPU (``--jobs``, as ``planpolicy simulate``); the same
  run in one process is timed too, alternating with it, for the ratio;
- the whole command (`planpolicy simulate ... --format json`), once;
- where the time goes (cProfile over one run in one process), by package and
  by function.

    .venv/bin/python tools/bench/bench_simulate.py [--plans 1000] [--days 180] [--runs 3]
        [--jobs 0] [--no-profile]

``--replay-cel`` runs the simulation once to record every CEL result, then
times (and profiles) runs that replay those results instead of evaluating:
the same run, turn for turn, without the cost of CEL evaluation, which shows
what everything else costs (the whole command is still timed for real).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARGET_SECONDS = 5.0


def scenario_text(plans: int, days: int, seed: int = 1) -> str:
    """A scenario with ``plans`` accounts and plans over ``days`` days."""
    rng = random.Random(seed)
    accounts, entries, timeline, actions = [], [], [], []
    for i in range(plans):
        name = f"acct-{i:04d}"
        proposed = rng.randrange(0, 60 * 24 * 60) // 5 * 5  # minutes, within 60 days
        renewal = proposed // 1440 + rng.randrange(30, 110)
        tickets = 1 if rng.random() < 0.3 else 0
        accounts.append(
            f"    {name}:\n"
            f"      account: {{account_id: {name}, arr: {rng.randrange(20, 900) * 1000}.0, "
            f"renewal_date: {_date(renewal)}, renewal: {{status: AT_RISK}}}}\n"
            f"      signals: {{open_p1_tickets: {tickets}, usage_trend: -0.1}}"
        )
        approve = proposed + rng.randrange(30, 48 * 60)
        entries.append(
            f"    - {{id: rd-{i:04d}, plan_type: RENEWAL_DEFENSE, account: {name}, owner: ae-{i % 40},"
            f" at: {_at(proposed)}, approve: {{by: dana, at: {_at(approve)}}}}}"
        )
        if tickets and rng.random() < 0.6:
            actions.append(
                f"    - {{at: {_at(approve + 1440 + rng.randrange(600))}, plan: rd-{i:04d}, "
                "do: approve_step, step: ESCALATE_SUPPORT_RISK, by: mia}"
            )
        fate = rng.random()
        closes = proposed + rng.randrange(20, 100) * 1440 + rng.randrange(1440)
        if fate < 0.6 and closes < days * 1440:
            timeline.append(
                f"    - {{at: {_at(closes)}, account: {name}, set: {{account.renewal.status: RENEWED}}}}"
            )
        elif fate < 0.7 and closes < days * 1440:
            timeline.append(
                f"    - {{at: {_at(closes)}, account: {name}, set: {{account.renewal.status: LOST}}}}"
            )
        if rng.random() < 0.2:
            change = proposed + rng.randrange(1, 40) * 1440
            if change < days * 1440:
                timeline.append(
                    f"    - {{at: {_at(change)}, account: {name}, "
                    f"set: {{signals.open_p1_tickets: {1 - tickets}}}}}"
                )
    return f"""\
apiVersion: planpolicy/v1
kind: Scenario
metadata:
  name: bench_{plans}_plans_{days}_days
  description: {plans} RENEWAL_DEFENSE plans over {days} days, outcomes drawn per attempt
spec:
  start: 2026-01-05T00:00:00Z
  horizon_days: {days}
  tenant: bench
  people: {{dana: [revenue_director], mia: [revenue_manager]}}
  accounts:
{chr(10).join(accounts)}
  plans:
{chr(10).join(entries)}
  executor:
    - {{action: PREP_RENEWAL_BRIEF, outcome: succeed, probability: 0.9}}
    - {{action: REQUEST_RENEWAL_MEETING, attempt: 1, outcome: pending, pending_for: 2d,
       probability: 0.5, otherwise: {{outcome: fail, error: no answer}}}}
    - {{action: REQUEST_RENEWAL_MEETING, outcome: succeed, probability: 0.6,
       otherwise: {{outcome: fail, error: no answer}}}}
    - {{action: ESCALATE_SUPPORT_RISK, outcome: succeed, probability: 0.8}}
  actions:
{chr(10).join(actions)}
  timeline:
{chr(10).join(timeline)}
"""


def _at(minutes: int) -> str:
    return f"day {minutes // 1440} {minutes % 1440 // 60:02d}:{minutes % 60:02d}"


def _date(day: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%dT00:00:00Z")


def _cpu() -> float:
    """CPU seconds of this process and of its ended (forked) workers."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _package(filename: str, function: str) -> str:
    if "pydantic_core" in function:
        return "pydantic (plan and ledger models)"
    for marker, name in (
        ("/celpy/", "cel-python (celpy)"),
        ("/lark/", "lark (celpy's tree walker)"),
        ("/pydantic", "pydantic (plan and ledger models)"),
        ("typing.py", "typing (isinstance checks inside celpy)"),
        ("/orchestrator/adapters/", "orchestrator adapters (memory store, executor)"),
        ("/orchestrator/", "orchestrator (scheduler, service, ledger)"),
        ("planpolicy/sim", "planpolicy simulation (driver, store index)"),
        ("planpolicy/scenario", "planpolicy scenario loading"),
        ("/planpolicy/", "planpolicy engine (gate, evaluator, facts, steps)"),
        ("json", "json"),
    ):
        if marker in filename:
            return name
    return "other (stdlib, builtins)"


CUMULATIVE = {
    "the scheduler's ticks (Scheduler.tick)": ("orchestrator/scheduler.py", "tick"),
    "CEL evaluation (CompiledExpr.evaluate)": ("planpolicy/cel.py", "evaluate"),
    "building CEL activations (facts.activation_for)": ("planpolicy/facts.py", "activation_for"),
    "the gate (Gate.evaluate, at activation)": ("planpolicy/gate.py", "evaluate"),
    "the state evaluator (StateEvaluator.evaluate)": ("planpolicy/evaluator.py", "evaluate"),
    "store writes (MemoryStore.update_plan)": ("orchestrator/adapters/memory.py", "update_plan"),
    "  of which the changed fields' JSON round trip (incremental.stored_update)": (
        "orchestrator/adapters/incremental.py",
        "stored_update",
    ),
    "  of which the plan's whole JSON round trip (codec.stored_form)": (
        "orchestrator/adapters/codec.py",
        "stored_form",
    ),
    "store reads (MemoryStore.get_plan)": ("orchestrator/adapters/memory.py", "get_plan"),
    "detached copies handed out by the store (memory.detached)": (
        "orchestrator/adapters/memory.py",
        "detached",
    ),
    "ledger drafts (PolicyRuntime.draft)": ("orchestrator/policy.py", "draft"),
    "people's commands and new plans (simulate.apply_event)": (
        "planpolicy/simulate.py",
        "apply_event",
    ),
    "the simulation's store index (SkippingStore, own time only)": (
        "planpolicy/simworld.py",
        "_settle",
    ),
    "collecting results (ledgers, records, timeline)": ("planpolicy/simulate.py", "_plan_result"),
    "  of which chaining the ledgers' hashes (SkippingStore.ledger_data)": (
        "planpolicy/simworld.py",
        "ledger_data",
    ),
    "the timeline": ("planpolicy/simulate.py", "_timeline"),
}


def replay_cel(run_once: Callable[[], object]) -> None:
    """Record every CEL result of ``run_once()``; afterwards evaluations replay them in order."""
    from planpolicy import cel

    real = cel.CompiledExpr.evaluate
    tape: list[tuple[str, cel.EvalResult]] = []

    def record(self: cel.CompiledExpr, activation: cel.Activation) -> cel.EvalResult:
        result = real(self, activation)
        tape.append((self.source, result))
        return result

    cel.CompiledExpr.evaluate = record  # type: ignore[method-assign]
    try:
        run_once()
    finally:
        cel.CompiledExpr.evaluate = real  # type: ignore[method-assign]
    position = itertools.count()

    def replay(self: cel.CompiledExpr, activation: cel.Activation) -> cel.EvalResult:
        source, result = tape[next(position) % len(tape)]
        if source != self.source:
            raise RuntimeError("the replayed run went another way than the recorded one")
        return result

    cel.CompiledExpr.evaluate = replay  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--jobs", type=int, default=0, help="processes per run (default 0: as the command's auto)"
    )
    parser.add_argument(
        "--replay-cel",
        action="store_true",
        help="time runs that replay recorded CEL results (the cost of everything but CEL)",
    )
    args = parser.parse_args()

    from orchestrator.scheduler import SchedulerSettings
    from planpolicy import load_bundle, simsplit
    from planpolicy.scenario import load_scenario
    from planpolicy.simulate import SimOptions, run

    bundle = load_bundle([str(REPO / "policies"), str(REPO / "plan_types")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(scenario_text(args.plans, args.days))
        size = path.stat().st_size
        if args.replay_cel:
            replay_cel(lambda: run(load_scenario(path, bundle), bundle))
            print("CEL evaluation replayed from a recording in the timed and profiled runs")
        split, single = SimOptions(jobs=args.jobs), SimOptions(jobs=1)
        samples, cpu, loads, alone = [], [], [], []
        result = None
        for _ in range(args.runs):
            began, began_cpu = time.perf_counter(), _cpu()
            scenario = load_scenario(path, bundle)
            loaded = time.perf_counter()
            result = run(scenario, bundle, split)
            samples.append(time.perf_counter() - began)
            cpu.append(_cpu() - began_cpu)
            loads.append(loaded - began)
            if args.jobs != 1:
                began = time.perf_counter()
                run(load_scenario(path, bundle), bundle, single)
                alone.append(time.perf_counter() - began)
        assert result is not None
        began = time.perf_counter()
        cli = [
            str(BIN / "planpolicy"),
            "simulate",
            str(path),
            "--format",
            "json",
            "--out",
            str(Path(tmp) / "out.json"),
        ]
        done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, check=False)
        whole = time.perf_counter() - began
        profile = None
        if not args.no_profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run(load_scenario(path, bundle), bundle, single)
            profiler.disable()
            profile = pstats.Stats(profiler)

    median = statistics.median(samples)
    stats = result.stats
    ends: dict[str, int] = defaultdict(int)
    for plan in result.plans:
        ends[plan.status + (f" ({plan.completion_reason})" if plan.completion_reason else "")] += 1
    print(f"python {platform.python_version()}, {platform.machine()}, {platform.system()}")
    print(f"scenario: {args.plans} plans, {args.days} days, {size / 1024:.0f} KiB of YAML")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus: {os.cpu_count()}, load average at the end: {load:.1f}")
    jobs = simsplit.usable_jobs(args.jobs, args.plans, SchedulerSettings().max_plans_per_tick)
    print(
        f"in process, {jobs} process{'es' if jobs != 1 else ''}, median of {args.runs}: "
        f"{median:.2f} s wall, {statistics.median(cpu):.2f} s CPU in all processes "
        f"(loading the scenario {statistics.median(loads):.2f} s)"
    )
    print(
        f"  runs: {', '.join(f'{s:.2f}' for s in samples)} s; target {TARGET_SECONDS:.0f} s: "
        f"{'met' if median < TARGET_SECONDS else 'missed'}"
    )
    print(
        f"  per plan turn: {1000 * statistics.median(cpu) / max(result.stats.plan_turns, 1):.2f} ms CPU"
    )
    if alone:
        single_median = statistics.median(alone)
        print(
            f"the same runs in one process (alternating): median {single_median:.2f} s "
            f"(runs {', '.join(f'{s:.2f}' for s in alone)} s); split/one: "
            f"{median / single_median:.2f}x"
        )
    print(f"whole command (--format json): {whole:.2f} s, exit {done.returncode}")
    print(
        f"ticks run: {stats.ticks:,} of {stats.ticks_modelled:,}; plan turns: {stats.plan_turns:,}; "
        f"idle polls skipped: {stats.idle_looks_skipped:,}; actions executed: {stats.executions:,}"
    )
    print("plans at the horizon: " + ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    if profile is not None:
        by_package: dict[str, float] = defaultdict(float)
        total = 0.0
        for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in profile.stats.items():  # type: ignore[attr-defined]
            by_package[_package(filename, name)] += tottime
            total += tottime
        print("\nown time by package (cProfile, one run in one process):")
        for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<52} {seconds / total:6.1%}")
        print("\ntime inside (cumulative, so the rows overlap):")
        for label, (file_part, function) in CUMULATIVE.items():
            seconds = sum(
                ct
                for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in profile.stats.items()  # type: ignore[attr-defined]
                if filename.endswith(file_part) and name == function
            )
            print(f"  {label:<60} {seconds / total:6.1%}")
        out = io.StringIO()
        profile.stream = out  # type: ignore[attr-defined]
        profile.sort_stats("tottime").print_stats(25)
        print("\ntop functions by own time:")
        print("\n".join(out.getvalue().splitlines()[6:]))
    return 0 if done.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
