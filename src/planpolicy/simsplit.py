"""Running one simulation's accounts in several processes.

Plans of different accounts never meet in the orchestrator: the gate's only
question about other plans is the account's active plan of a type, people's
commands name one plan, the scripted executor draws from the seed and the
idempotency key alone, and each plan's ledger and attempts are its own.

What can couple them is the poll itself, and only when a plan's tick is
already past when it is due:

- a tick with more plans due than ``SchedulerSettings.max_plans_per_tick``
  leaves some for the next tick (a scenario with no more plans than that
  limit never fills a tick, so such runs are not split);
- a plan still due after its turn (more work than one turn's actions) stays
  on the scheduler's pages of due plans, and a tick that meets a page of
  such plans leaves the plans after them, of any account, for the next
  tick; the simulation then ticks again right after the last tick run, of
  whichever plan.

:func:`planpolicy.simulate.run` gives each group of accounts (balanced by how
many plans and commands they have) to a forked worker, runs one group itself,
and merges the groups' plans, refused commands and counts into the result a
single process gives, byte for byte (``tests/simulate`` checks it). Each
part reports whether any plan was ever due at a tick already past
(``overdue``); if one was, the parts are dropped and the run is made again in
one process, so a split run is never different, only sometimes slower.
Only POSIX ``fork`` is used, from a process with no other threads; a worker
that fails delivers nothing, and its group is then run in this process.
:func:`planpolicy.simulate.monte_carlo` uses the same workers to share out
whole runs, which never meet at all.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from planpolicy import forked

__all__ = [
    "MAX_AUTO_JOBS",
    "MAX_JOBS",
    "MIN_PLANS",
    "account_groups",
    "auto_jobs",
    "run_groups",
    "usable_jobs",
]

_T = TypeVar("_T")

MIN_PLANS = 200
"""Fewest plans a run is split for with ``jobs=0`` (auto): smaller runs take well under a second."""

MAX_AUTO_JOBS = 8
"""Most processes ``jobs=0`` (auto) runs a simulation in."""

MAX_JOBS = 64
"""Most processes a run is split over, whatever ``jobs`` asks."""


def auto_jobs(cpus: int | None, plans: int) -> int:
    """Processes for a run of ``plans`` plans on ``cpus`` CPUs with ``jobs=0`` (auto)."""
    if cpus is None or cpus < 2 or plans < MIN_PLANS:
        return 1
    return min(cpus, MAX_AUTO_JOBS)


def usable_jobs(jobs: int, plans: int, max_plans_per_tick: int) -> int:
    """How many processes a run may use: ``jobs`` (0: auto), or 1 where splitting is unsafe.

    One process when a tick could hold more plans than the scheduler's limit,
    where there is no ``fork``, or where other threads run (a forked child
    would inherit their locks in whatever state they are).
    """
    if jobs == 1 or plans > max_plans_per_tick or not hasattr(os, "fork"):
        return 1
    if threading.active_count() > 1:
        return 1
    return min(jobs, MAX_JOBS) if jobs > 0 else auto_jobs(os.cpu_count(), plans)


def account_groups(weights: Mapping[str, int], count: int) -> list[list[str]]:
    """Split accounts into at most ``count`` groups of about equal total weight.

    Heaviest first, each to the lightest group so far (ties: the first); the
    same weights always give the same groups. Empty groups are left out.
    """
    groups: list[list[str]] = [[] for _ in range(max(1, count))]
    loads = [0] * len(groups)
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        lightest = loads.index(min(loads))
        groups[lightest].append(name)
        loads[lightest] += weights[name]
    return [group for group in groups if group]


def run_groups(work: Sequence[Callable[[], _T]]) -> list[_T]:
    """``[w() for w in work]``: the first here, the others in forked workers meanwhile.

    A worker's result comes back pickled; a worker that fails, or whose
    result does not decode, is run again here, so the list is always
    complete. If this process's own share raises, the workers are stopped.
    """
    started: list[forked.Worker | None] = []
    results: list[_T] = []
    try:
        with forked.held_signals():  # every worker started is recorded
            for share in work[1:]:
                started.append(forked.start(_pickled(share)))
        results.append(work[0]())
        for index in range(1, len(work)):
            worker, started[index - 1] = started[index - 1], None
            # collect stops the worker itself if interrupted
            data = forked.collect(worker) if worker is not None else None
            results.append(_decoded(data, work[index]))
    except BaseException:  # this share failed, or an interrupt: no worker left behind
        for left in started:
            if left is not None:
                forked.abandon(left)
        raise
    return results


def _pickled(work: Callable[[], _T]) -> Callable[[], bytes]:
    return lambda: pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)


def _decoded(data: bytes | None, work: Callable[[], _T]) -> _T:
    """A worker's result; its share is done here when it sent nothing usable."""
    if data:
        try:
            result: _T = pickle.loads(data)  # our own child's bytes
        except Exception:  # a worker that died midway: do its share here
            pass
        else:
            return result
    return work()
