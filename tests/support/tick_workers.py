"""Worker processes for the tick race tests (started with the ``spawn`` method).

Each worker wires its own store connection, policy runtime, account facts and
HTTP executor (the shared reference execution service), then runs one tick per
round at the round's instant; a barrier releases all workers into each round
together, so every round is a real race over the same due plans.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any


def work(
    name: str,
    config: dict[str, Any],
    rounds: list[str],
    barrier: Barrier,
    results: Queue[Any],
) -> None:
    """Tick once per round; report the summed counts (or the traceback) on ``results``."""
    try:
        from orchestrator.accounts import DirectoryAccounts
        from orchestrator.adapters.http_executor import HttpExecutor
        from orchestrator.clock import ManualClock
        from orchestrator.policy import PolicyRuntime
        from orchestrator.scheduler import Scheduler, SchedulerSettings
        from orchestrator.service import PlanService
        from orchestrator.stores import open_store
        from planpolicy import load_bundle

        clock = ManualClock(datetime.fromisoformat(rounds[0]))
        store = open_store(config["store"])
        try:
            service = PlanService(
                store,
                PolicyRuntime(load_bundle(config["policies"])),
                DirectoryAccounts(config["accounts"]),
                clock,
            )
            scheduler = Scheduler(
                service,
                HttpExecutor(config["executor"], timeout=config["timeout"]),
                SchedulerSettings(
                    worker_id=name,
                    shuffle=True,
                    strict=True,
                    lease_ttl=timedelta(seconds=60),
                ),
            )
            totals: dict[str, int] = {}
            started = time.perf_counter()
            for instant in rounds:
                clock.set(datetime.fromisoformat(instant))
                barrier.wait(timeout=120)
                if "first_round_ms" not in totals:
                    totals["first_round_ms"] = int((time.perf_counter() - started) * 1000)
                summary = scheduler.tick(clock.now())
                for key, value in summary.as_dict().items():
                    totals[key] = totals.get(key, 0) + value
            totals["ticking_ms"] = (
                int((time.perf_counter() - started) * 1000) - totals["first_round_ms"]
            )
            results.put((name, "ok", totals))
        finally:
            store.close()
    except BaseException:
        barrier.abort()
        results.put((name, "error", traceback.format_exc()))


@dataclass
class TickRace:
    """``size`` spawned workers ticking ``rounds`` together against one store."""

    size: int
    config: dict[str, Any]
    rounds: list[datetime]
    processes: list[SpawnProcess] = field(default_factory=list)

    def run(self, timeout: float = 300) -> dict[str, dict[str, int]]:
        """Start the workers, wait for them, return each worker's totals (errors raise)."""
        ctx = mp.get_context("spawn")
        results: Queue[Any] = ctx.Queue()
        barrier = ctx.Barrier(self.size)
        instants = [r.isoformat() for r in self.rounds]
        for i in range(self.size):
            process = ctx.Process(
                target=work,
                args=(f"worker-{i}", self.config, instants, barrier, results),
                daemon=True,
            )
            process.start()
            self.processes.append(process)
        try:
            reports = [results.get(timeout=timeout) for _ in range(self.size)]
        finally:
            for process in self.processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join()
                process.close()
            results.close()
            results.join_thread()
        errors = [r for r in reports if r[1] == "error"]
        if errors:
            raise AssertionError(f"{errors[0][0]} failed:\n{errors[0][2]}")
        return {name: totals for name, _, totals in reports}
