"""Worker processes for store race tests (started with the ``spawn`` method).

A worker serves tasks from its own queue until it receives ``None``; each task
names the store by URL (``sqlite:///...`` or ``dynamodb://PREFIX``), waits on a
shared barrier so that all workers hit the store at once, and reports a result
tuple on the shared results queue. Stores are opened once per spec and reused;
DynamoDB stores share one boto3 client per worker.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any


def _open(url: str, stores: dict[str, Any], client: list[Any]) -> Any:
    """The store at ``url``; DynamoDB stores of one worker share one boto3 client."""
    if url not in stores:
        if url.startswith("dynamodb://"):
            import boto3

            from orchestrator.adapters.dynamodb import DynamoDBStore

            if not client:
                client.append(boto3.client("dynamodb", region_name="us-east-1"))
            prefix = url.removeprefix("dynamodb://").split("?", 1)[0]
            stores[url] = DynamoDBStore(prefix, client=client[0])
        else:
            from orchestrator.stores import open_store

            stores[url] = open_store(url)
    return stores[url]


def _activate(store: Any, task: dict[str, Any], barrier: Barrier) -> tuple[Any, ...]:
    """Create an APPROVED plan, then (with every other worker at once) try to activate it."""
    from orchestrator.errors import GuardConflict
    from orchestrator.ledger import LedgerDraft, LedgerEvent
    from planpolicy.plan import PlanStatus
    from support.plans import created, make_plan

    plan = make_plan(task["tenant_id"], task["account_id"], status=PlanStatus.APPROVED)
    plan = store.create_plan(plan, created(plan))
    now = plan.updated_at
    activated = LedgerDraft(
        time=now, actor="orchestrator", event=LedgerEvent.ACTIVATED, reason="gate: can_activate"
    )
    barrier.wait(timeout=60)
    try:
        store.update_plan(
            plan.model_copy(update={"status": "ACTIVE", "activated_at": now}),
            expected_version=plan.version,
            entries=[activated],
            activate_guard=True,
        )
    except GuardConflict as conflict:
        rejected = LedgerDraft(
            time=now,
            actor="orchestrator",
            event=LedgerEvent.ACTIVATION_REJECTED,
            reason=conflict.message,
            evidence={"holder_plan_id": conflict.holder_plan_id},
        )
        [entry] = store.append_ledger(plan.tenant_id, plan.plan_id, [rejected])
        return ("rejected", plan.plan_id, conflict.holder_plan_id, entry.seq, entry.reason)
    return ("won", plan.plan_id, None, None, None)


def _increment(store: Any, task: dict[str, Any], barrier: Barrier) -> tuple[Any, ...]:
    from orchestrator.errors import StoreUnavailable, VersionConflict
    from orchestrator.ledger import LedgerDraft, LedgerEvent

    conflicts = 0
    barrier.wait(timeout=60)
    for _ in range(task["count"]):
        while True:
            plan = store.get_plan(task["tenant_id"], task["plan_id"])
            step = plan.steps[0]
            bumped = step.model_copy(update={"attempts": step.attempts + 1})
            note = LedgerDraft(
                time=plan.updated_at,
                actor=task["name"],
                event=LedgerEvent.NOTE,
                reason=f"{task['name']} counts {step.attempts + 1}",
            )
            try:
                store.update_plan(
                    plan.model_copy(update={"steps": [bumped, *plan.steps[1:]]}),
                    expected_version=plan.version,
                    entries=[note],
                )
                break
            except (VersionConflict, StoreUnavailable):
                conflicts += 1
    return ("incremented", task["count"], conflicts)


def serve(
    name: str,
    tasks: Queue[dict[str, Any] | None],
    results: Queue[Any],
    barriers: dict[int, Barrier],
) -> None:
    """The worker loop: run tasks until ``None``; report every outcome, errors included."""
    # The store server is the bottleneck; workers yield the CPU to it first.
    os.nice(10)
    stores: dict[str, Any] = {}
    client: list[Any] = []
    try:
        while (task := tasks.get()) is not None:
            try:
                store = _open(task["store"], stores, client)
                barrier = barriers[task["parties"]]
                handler = _activate if task["kind"] == "activate" else _increment
                results.put((name, *handler(store, {**task, "name": name}, barrier)))
            except Exception:
                results.put((name, "error", traceback.format_exc()))
    finally:
        for store in stores.values():
            store.close()
        for opened in client:
            opened.close()
        # hand the last results over, then skip the interpreter's slow teardown
        results.close()
        results.join_thread()
        os._exit(0)


@dataclass
class WorkerPool:
    """Spawned worker processes, each with its own task queue, sharing barriers."""

    size: int
    processes: list[SpawnProcess] = field(default_factory=list)
    queues: list[Queue[dict[str, Any] | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.results: Queue[Any] = ctx.Queue()
        self.barriers = {n: ctx.Barrier(n) for n in sorted({self.size, 4})}
        for i in range(self.size):
            queue: Queue[dict[str, Any] | None] = ctx.Queue()
            process = ctx.Process(
                target=serve,
                args=(f"worker-{i}", queue, self.results, self.barriers),
                daemon=True,
            )
            process.start()
            self.queues.append(queue)
            self.processes.append(process)

    def submit(self, tasks: list[dict[str, Any]]) -> None:
        """Give task i to worker i (they meet at the barrier for ``len(tasks)`` parties)."""
        for queue, task in zip(self.queues, tasks, strict=False):
            queue.put({**task, "parties": len(tasks)})

    def collect(self, count: int, timeout: float = 120) -> list[tuple[Any, ...]]:
        """One result per submitted task, sorted; a worker's error fails the test."""
        results = [self.results.get(timeout=timeout) for _ in range(count)]
        errors = [r for r in results if r[1] == "error"]
        if errors:
            raise AssertionError(f"worker {errors[0][0]} failed:\n{errors[0][2]}")
        return sorted(results)

    def run(self, tasks: list[dict[str, Any]], timeout: float = 120) -> list[tuple[Any, ...]]:
        """Submit and collect."""
        self.submit(tasks)
        return self.collect(len(tasks), timeout)

    def close(self) -> None:
        """Stop the workers and release the queues."""
        for queue in self.queues:
            queue.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
        for queue in [*self.queues, self.results]:
            queue.close()
            queue.join_thread()
