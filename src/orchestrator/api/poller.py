"""The poll loop beside the API (``serve --with-scheduler``): one scheduler tick every interval.

A daemon thread calls :meth:`orchestrator.scheduler.Scheduler.tick` with the
context's clock, logs a summary when there was due work, and stops when asked
(between ticks, or while waiting). A failing tick is logged and the loop goes
on: the next tick reconciles by idempotency key.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from orchestrator.api.context import ApiContext
from orchestrator.execution import ActionExecutor
from orchestrator.scheduler import Scheduler, SchedulerSettings
from orchestrator.wiring import default_worker_id

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Runs scheduler ticks on a background thread until :meth:`stop`."""

    def __init__(
        self,
        context: ApiContext,
        executor: ActionExecutor,
        *,
        interval: timedelta,
        worker_id: str | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("the poll interval must be positive")
        self._context = context
        # A worker id unique to this process: leases name their holder, and two
        # API servers polling one store must not look like the same worker.
        self._scheduler = Scheduler(
            context.service,
            executor,
            SchedulerSettings(worker_id=worker_id or f"api-poller:{default_worker_id()}"),
        )
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plan-poller", daemon=True)
        self.ticks = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop and wait for the tick in progress to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                summary = self._scheduler.tick(
                    self._context.clock.now(), should_stop=self._stop.is_set
                )
            except Exception:
                log.exception("scheduler tick failed; the next tick reconciles")
            else:
                if summary.due:
                    log.info("tick: %s", summary)
            self.ticks += 1
            self._stop.wait(self._interval)
