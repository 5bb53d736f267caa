"""A run split over processes by account equals the run in one process.

Each share is a real forked process (``planpolicy.simsplit``). The result
(plans, ledgers, attempts, timeline, refusals, expectations, counts) must be
the single process's, field for field, and its JSON report byte for byte; a
worker killed midway or failing costs time, never a plan.

A run is split only in a process without other threads, and the test
session has some (its servers), so split runs happen in a fresh process
(``split_runner.py``) and are compared with the run made here in one process.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from orchestrator.adapters.memory import MemoryStore
from orchestrator.scheduler import SchedulerSettings
from planpolicy import PolicyBundle, load_bundle, simsplit, simulate
from planpolicy.scenario import load_scenario
from planpolicy.simulate import RunResult, SimOptions, events, run

from .conftest import EXAMPLES, POLICY_PATHS
from .split_runner import report, stripped
from .test_equivalence import (
    BUSY,
    HERE,
    OUTCOMES,
    _at,
    assert_same,
    real_loop,
    simulated,
)

PROGRAM = Path(sys.executable).parent / "planpolicy"  # the console script, quick exit and all
ACCOUNTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne"]
PEOPLE = "{alice: [account_executive], mia: [revenue_manager], dana: [revenue_director]}"
COMMANDS = [
    "do: pause, by: alice",
    "do: resume, by: dana",
    "do: abort, by: mia",
    "do: approve_step, step: ESCALATE_SUPPORT_RISK, by: mia",
    "do: approve, by: alice",
]


def many_accounts(seed: int, plans: int = 14, days: int = 12) -> str:
    """Plans over several accounts (some share one: a second plan is refused), with commands
    across them, changes of facts, and outcomes scripted for some plans only."""
    rng = random.Random(seed)
    lines = [
        "apiVersion: planpolicy/v1",
        "kind: Scenario",
        f"metadata: {{name: split-{seed}}}",
        "spec:",
        "  start: 2026-01-05T00:00:00Z",
        f"  horizon_days: {days}",
        f"  people: {PEOPLE}",
        "  accounts:",
    ]
    for account in ACCOUNTS:
        lines += [
            f"    {account}:",
            "      account: {renewal_date: 2026-03-20T00:00:00Z, renewal: {status: AT_RISK}}",
            f"      signals: {{open_p1_tickets: {rng.randrange(3)}}}",
        ]
    lines.append("  plans:")
    starts = {}
    for index in range(plans):
        plan = f"p{index}"
        starts[plan] = rng.randrange(0, days * 1440 // 2)
        lines.append(
            f"    - {{id: {plan}, plan_type: RENEWAL_DEFENSE, account: {rng.choice(ACCOUNTS)}, "
            f"owner: alice, at: {_at(starts[plan])}, expires_in_days: {rng.randrange(2, days)}}}"
        )
    lines.append("  executor:")
    rules = {
        (
            rng.choice(["PREP_RENEWAL_BRIEF", "REQUEST_RENEWAL_MEETING"]),
            rng.randrange(1, 3),
            f", plan: p{rng.randrange(plans)}" if rng.random() < 0.4 else "",
        )
        for _ in range(rng.randrange(2, 8))
    }
    for action, attempt, only in sorted(rules):
        lines.append(
            f"    - {{action: {action}, attempt: {attempt}{only}, {rng.choice(OUTCOMES)}}}"
        )
    lines.append("  actions:")
    for plan, begins in starts.items():
        if rng.random() < 0.85:
            at = rng.randrange(begins, days * 1440)
            lines.append(f"    - {{at: {_at(at)}, plan: {plan}, do: approve, by: dana}}")
        for _ in range(rng.randrange(3)):
            at = rng.randrange(begins, days * 1440)
            lines.append(f"    - {{at: {_at(at)}, plan: {plan}, {rng.choice(COMMANDS)}}}")
    lines.append("  timeline:")
    lines.append("    - {at: day 0, account: acme, set: {signals.usage_trend: 0.0}}")
    for _ in range(rng.randrange(3, 12)):
        account = rng.choice(ACCOUNTS)
        if rng.random() < 0.3:
            change = f"account.renewal.status: {rng.choice(['RENEWED', 'LOST'])}"
        else:
            change = f"signals.open_p1_tickets: {rng.randrange(3)}"
        lines.append(
            f"    - {{at: {_at(rng.randrange(days * 1440))}, account: {account}, "
            f"set: {{{change}}}}}"
        )
    lines.append("  expect:")
    lines.append("    - {plan: p0, status: COMPLETED}")
    lines.append("    - {plan: p1, refused: approve, count: 0}")
    return "\n".join(lines) + "\n"


RUNNER = Path(__file__).with_name("split_runner.py")


def split_runs(
    tmp_path: Path, scenario: Path, *, jobs: tuple[int, ...] = (2, 3), **request: Any
) -> dict[int, dict[str, Any]]:
    """Run ``scenario`` with each number of processes in a fresh process (no other threads)."""
    request = {
        "scenario": str(scenario),
        "policies": POLICY_PATHS,
        "jobs": list(jobs),
        **request,
    }
    base = tmp_path / f"split-{len(list(tmp_path.glob('split-*.json')))}"
    asked, answer = base.with_suffix(".json"), base.with_suffix(".pickle")
    asked.write_text(json.dumps(request))
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(asked), str(answer)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return {int(k): v for k, v in pickle.loads(answer.read_bytes()).items()}


def assert_split_equals_one_process(
    scenario_path: Path, bundle: PolicyBundle, tmp_path: Path, *, seed: int = 0
) -> RunResult:
    scenario = load_scenario(scenario_path, bundle)
    one = run(scenario, bundle, SimOptions(jobs=1, seed=seed))
    accounts = len({p.plan.account_id for p in scenario.plans})
    for jobs, got in split_runs(tmp_path, scenario_path, seed=seed).items():
        # really split, into whole accounts (one account: nothing to split)
        assert got["shares"] == ([min(jobs, accounts)] if accounts > 1 else [])
        assert not any(got["overdue"])  # the parts were kept, not made again in one process
        assert got["result"] == stripped(one), f"jobs={jobs}"
        assert got["report"] == report(one), f"jobs={jobs}"
    return one


@pytest.mark.parametrize("seed", range(12))
def test_a_split_run_equals_one_process(bundle: PolicyBundle, tmp_path: Path, seed: int) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(seed))
    one = assert_split_equals_one_process(path, bundle, tmp_path, seed=seed)
    assert len({p.account_id for p in one.plans}) >= 3


def test_the_random_scenarios_cover_what_splitting_must_keep(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    seen: set[str] = set()
    refused = 0
    for seed in range(12):
        path = tmp_path / f"split-{seed}.yaml"
        path.write_text(many_accounts(seed))
        result = run(load_scenario(path, bundle), bundle, SimOptions(jobs=1, seed=seed))
        seen |= {i.event for i in result.timeline}
        refused += len(result.refusals)
        assert result.stats.idle_looks_skipped > 0
    # a second plan on an account is rejected at activation: the gate asks about the account
    assert {"activation_rejected", "completed", "expired", "paused", "aborted"} <= seen
    assert refused > 0


@pytest.mark.parametrize("path", [*sorted(EXAMPLES.glob("*.yaml")), BUSY], ids=lambda p: p.stem)
def test_examples_split_equal_one_process(bundle: PolicyBundle, path: Path, tmp_path: Path) -> None:
    assert_split_equals_one_process(path, bundle, tmp_path)


def test_a_split_run_equals_a_real_tick_loop(bundle: PolicyBundle, tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(3, plans=10, days=8))
    scenario = load_scenario(path, bundle)
    store = MemoryStore()
    store.init()
    reference = real_loop(scenario, bundle, store, seed="3/0")
    got = split_runs(tmp_path, path, jobs=(2,), seed=3)[2]
    assert got["shares"] == [2]
    plans = got["result"]["plans"]
    assert_same(reference, simulated(cast(RunResult, SimpleNamespace(plans=plans))))


def test_monte_carlo_and_compare_split_equal_one_process(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(5))
    scenario = load_scenario(path, bundle)
    one = simulate.monte_carlo(scenario, bundle, 4, SimOptions(jobs=1, seed=9))
    runs = split_runs(tmp_path, path, jobs=(2, 3), seed=9, mode="monte_carlo", runs=4)
    for jobs, got in runs.items():
        assert got["shares"] == [jobs]  # the runs shared out, each run in one process
        assert got["result"] == (one.plans, one.overall, one.expectations, one.failures)
    # one run: split by account instead
    alone = simulate.monte_carlo(scenario, bundle, 1, SimOptions(jobs=1, seed=9))
    got = split_runs(tmp_path, path, jobs=(2,), seed=9, mode="monte_carlo", runs=1)[2]
    assert got["shares"] == [2]
    assert got["result"] == (alone.plans, alone.overall, alone.expectations, alone.failures)
    compared = simulate.compare(scenario, bundle, bundle, SimOptions(jobs=1))
    got = split_runs(tmp_path, path, jobs=(2,), mode="compare")[2]
    assert got["shares"] == [2, 2]
    assert got["divergences"] == compared.divergences == ()
    assert got["result"] == (stripped(compared.left), stripped(compared.right))


def bulk_scenario(accounts: int) -> str:
    """``accounts`` one-plan accounts and a plan on account ``zz``, all approved at 00:05.

    BULK plans are still due after their turn (ten immediate steps, eight
    actions per turn): the scheduler's page of due plans (500) then holds
    plans it has looked at, and plans after them wait a tick, whichever
    account they are on.
    """
    names = [f"a{i:03d}" for i in range(accounts)]
    lines = [
        "apiVersion: planpolicy/v1",
        "kind: Scenario",
        "metadata: {name: page-cap}",
        "spec:",
        "  start: 2026-01-05T00:00:00Z",
        "  horizon_days: 1",
        "  people: {dana: [revenue_director]}",
        "  accounts:",
        *(f"    {n}: {{account: {{renewal: {{status: OPEN}}}}}}" for n in [*names, "zz"]),
        "  plans:",
        f"    - {{plan_type: BULK, accounts: [{', '.join(names)}],"
        " approve: {by: dana, at: day 0 00:05}}",
        "    - {id: zz, plan_type: BULK, account: zz, approve: {by: dana, at: day 0 00:05}}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def bulk_bundle() -> PolicyBundle:
    return load_bundle([*POLICY_PATHS, str(HERE / "plan_types")])


def test_plans_that_can_meet_are_run_in_one_process(
    bulk_bundle: PolicyBundle, tmp_path: Path
) -> None:
    path = tmp_path / "page_cap.yaml"
    path.write_text(bulk_scenario(600))
    scenario = load_scenario(path, bulk_bundle)
    one = run(scenario, bulk_bundle, SimOptions(jobs=1))
    zz = one.plan("zz")
    # one process: the 500 plans still due fill the page, so zz activates a tick later
    activated = [e["time"] for e in zz.ledger if e["event"] == "activated"]
    assert activated == ["2026-01-05T00:10:00Z"]
    policies = [*POLICY_PATHS, str(HERE / "plan_types")]
    got = split_runs(tmp_path, path, jobs=(2,), policies=policies)[2]
    assert got["shares"] == [2]  # tried apart, found overdue, run again in one process
    assert any(got["overdue"])
    assert got["result"] == stripped(one)


def test_a_part_with_a_plan_still_due_after_its_turn_is_overdue(
    bulk_bundle: PolicyBundle, tmp_path: Path
) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(bulk_scenario(3))
    scenario = load_scenario(path, bulk_bundle)
    settings = SchedulerSettings(worker_id=simulate.WORKER)
    part = simulate._run_part(scenario, bulk_bundle, SimOptions(), settings, events(scenario))
    assert part.overdue
    renewal = load_scenario(EXAMPLES / "renewal_saved.yaml", bulk_bundle)
    part = simulate._run_part(renewal, bulk_bundle, SimOptions(), settings, events(renewal))
    assert not part.overdue


# --- the workers ----------------------------------------------------------------------------


def test_each_share_runs_in_its_own_process() -> None:
    pids = simsplit.run_groups([os.getpid, os.getpid, os.getpid])
    assert pids[0] == os.getpid()
    assert len(set(pids)) == 3


def _only_here(parent: int, value: int) -> int:
    if os.getpid() != parent:
        os._exit(3)  # a worker that fails delivers nothing
    return value


def test_a_failing_worker_share_is_run_here() -> None:
    parent = os.getpid()
    results = simsplit.run_groups(
        [lambda: 1, lambda: _only_here(parent, 2), lambda: _only_here(parent, 3)]
    )
    assert results == [1, 2, 3]


def test_a_result_that_cannot_be_sent_is_made_here() -> None:
    parent = os.getpid()

    def share() -> Any:
        return threading.Lock() if os.getpid() != parent else "made here"  # not picklable

    assert simsplit.run_groups([lambda: 0, share]) == [0, "made here"]


def _slow_worker(marks: Path) -> int:
    (marks / str(os.getpid())).touch()
    threading.Event().wait(60)
    return 0


def _wait_for(marks: Path, count: int) -> list[int]:
    for _ in range(1000):
        found = [int(p.name) for p in marks.iterdir()]
        if len(found) >= count:
            return found
        threading.Event().wait(0.01)
    raise AssertionError("the workers did not start")


def _assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # stopped and reaped: not running, not a zombie


def test_workers_are_stopped_when_this_share_fails(tmp_path: Path) -> None:
    def boom() -> int:
        _wait_for(tmp_path, 2)
        raise RuntimeError("this share failed")

    def slow() -> int:
        return _slow_worker(tmp_path)

    with pytest.raises(RuntimeError, match="this share failed"):
        simsplit.run_groups([boom, slow, slow])
    _assert_gone(_wait_for(tmp_path, 2))


class Interrupted(Exception):
    pass


def test_workers_are_stopped_when_waiting_for_them_is_interrupted(tmp_path: Path) -> None:
    def slow() -> int:
        return _slow_worker(tmp_path)

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # while this process waits for the workers
        with pytest.raises(Interrupted):
            simsplit.run_groups([lambda: 0, slow, slow])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _assert_gone(_wait_for(tmp_path, 2))


def test_a_worker_killed_midway_costs_time_not_plans(bundle: PolicyBundle, tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(7))
    one = run(load_scenario(path, bundle), bundle, SimOptions(jobs=1))
    marks = tmp_path / "marks"
    marks.mkdir()
    got = split_runs(tmp_path, path, jobs=(3,), kill_worker_at_tick=5, marks=str(marks))[3]
    assert got["shares"] == [3]
    assert len(list(marks.glob("killed-*"))) == 2  # both workers died midway
    assert got["result"] == stripped(one)


# --- when a run is split --------------------------------------------------------------------


def test_how_many_processes_a_run_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert simsplit.auto_jobs(2, 1000) == 2
    assert simsplit.auto_jobs(64, 1000) == simsplit.MAX_AUTO_JOBS
    assert simsplit.auto_jobs(1, 1000) == 1
    assert simsplit.auto_jobs(None, 1000) == 1
    assert simsplit.auto_jobs(4, simsplit.MIN_PLANS - 1) == 1
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # as in a fresh process
    assert simsplit.usable_jobs(1, 5000, 10_000) == 1
    assert simsplit.usable_jobs(3, 10, 10_000) == 3  # asked for: any size
    assert simsplit.usable_jobs(500, 1000, 10_000) == simsplit.MAX_JOBS
    # a tick could hold more plans than the scheduler takes: plans would meet, not split
    assert simsplit.usable_jobs(3, 10_001, 10_000) == 1


def test_no_split_while_other_threads_run() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert simsplit.usable_jobs(2, 5000, 10_000) == 1
        assert simsplit.usable_jobs(0, 5000, 10_000) == 1
    finally:
        stop.set()
        other.join()


def test_account_groups_are_balanced_and_stable() -> None:
    weights = {"a": 9, "b": 7, "c": 5, "d": 4, "e": 3, "f": 1}
    groups = simsplit.account_groups(weights, 2)
    assert groups == simsplit.account_groups(dict(reversed(weights.items())), 2)
    assert sorted(name for group in groups for name in group) == sorted(weights)
    loads = [sum(weights[n] for n in group) for group in groups]
    assert abs(loads[0] - loads[1]) <= 1
    assert simsplit.account_groups({"a": 1}, 4) == [["a"]]
    assert simsplit.account_groups({}, 2) == []


def _without_seconds(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_seconds(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_without_seconds(v) for v in data]
    return data


def test_the_command_gives_the_same_report_with_any_number_of_processes(tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(11))
    reports = []
    for jobs in ("1", "2"):
        done = subprocess.run(
            [
                str(PROGRAM),
                "simulate",
                str(path),
                "--format",
                "json",
                "--jobs",
                jobs,
                "--policies",
                POLICY_PATHS[0],
                "--policies",
                POLICY_PATHS[1],
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        assert done.stderr == ""
        reports.append(json.loads(done.stdout))
    one, split = reports
    assert len(one["plans"]) == 14
    assert _without_seconds(one) == _without_seconds(split)


def test_the_command_refuses_a_negative_jobs(tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(many_accounts(0))
    done = subprocess.run(
        [str(PROGRAM), "simulate", str(path), "--jobs", "-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "`--jobs` must be 0 (auto) or more" in done.stderr
