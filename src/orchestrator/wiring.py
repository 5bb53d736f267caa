"""Wiring: the one place where the orchestrator's parts are chosen and put together.

Every entry point (the ``plan-orchestrator`` verbs, the Lambda handler, the
benchmarks) builds its store, policy runtime, account facts, executor and clock
here, from explicit arguments that fall back to the environment:

=============================  =====================================================
setting                        argument / environment (default)
=============================  =====================================================
plan store                     ``--store`` / ``PLANSTORE_URL`` (``sqlite:///./planstore.db``)
policy bundle                  ``--policies DIR`` (repeatable) / ``PLANPOLICY_POLICIES``
                               (``os.pathsep``-separated) (``policies``, ``plan_types``)
account facts                  ``--accounts DIR`` / ``PLANPOLICY_ACCOUNTS`` (``accounts``)
action executor                ``--executor URL|memory`` / ``PLANPOLICY_EXECUTOR_URL``
                               (none: verbs that dispatch refuse to start)
executor timeout (seconds)     ``PLANPOLICY_EXECUTOR_TIMEOUT`` (10)
clock                          the system clock; ``--now ISO-8601`` stops it there
=============================  =====================================================

There is deliberately no default executor: a worker that silently "executed"
steps in memory would mark real work done. ``memory`` is for local dry runs.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final

from orchestrator.accounts import AccountFacts, DirectoryAccounts
from orchestrator.clock import Clock, FixedClock, SystemClock, parse_instant
from orchestrator.execution import ActionExecutor
from orchestrator.policy import PolicyRuntime
from orchestrator.ports import ManagedStore
from orchestrator.scheduler import Scheduler, SchedulerSettings
from orchestrator.service import PlanService
from orchestrator.stores import DEFAULT_STORE_URL, STORE_URL_ENV, open_store

__all__ = [
    "ACCOUNTS_ENV",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_POLICIES",
    "EXECUTOR_ENV",
    "EXECUTOR_TIMEOUT_ENV",
    "POLICIES_ENV",
    "Orchestrator",
    "WiringError",
    "build",
    "build_accounts",
    "build_clock",
    "build_executor",
    "default_worker_id",
    "load_runtime",
    "policy_paths",
]

POLICIES_ENV: Final = "PLANPOLICY_POLICIES"
ACCOUNTS_ENV: Final = "PLANPOLICY_ACCOUNTS"
EXECUTOR_ENV: Final = "PLANPOLICY_EXECUTOR_URL"
EXECUTOR_TIMEOUT_ENV: Final = "PLANPOLICY_EXECUTOR_TIMEOUT"
DEFAULT_POLICIES: Final = ("policies", "plan_types")
DEFAULT_ACCOUNTS: Final = "accounts"


class WiringError(Exception):
    """The configuration cannot be used (a usage error: fix the arguments or environment)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def policy_paths(
    paths: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The policy directories: the arguments, else ``$PLANPOLICY_POLICIES``, else the defaults."""
    if paths:
        return list(paths)
    raw = (os.environ if env is None else env).get(POLICIES_ENV, "")
    found = [part for part in raw.split(os.pathsep) if part.strip()]
    return found or list(DEFAULT_POLICIES)


def load_runtime(paths: Sequence[str] | None = None) -> PolicyRuntime:
    """Compile the bundle once; ``WiringError`` naming the first problem if it does not compile."""
    from planpolicy import BundleError, load_bundle

    chosen = policy_paths(paths)
    missing = [p for p in chosen if not os.path.exists(p)]
    if missing:
        raise WiringError(f"policy path `{missing[0]}` does not exist")
    try:
        return PolicyRuntime(load_bundle(chosen))
    except BundleError as exc:
        raise WiringError(str(exc)) from exc


def build_accounts(directory: str | None = None) -> AccountFacts:
    """Account facts from ``<dir>/[<tenant>/]<account_id>.yaml`` files."""
    return DirectoryAccounts(directory or os.environ.get(ACCOUNTS_ENV) or DEFAULT_ACCOUNTS)


def build_clock(now: str | datetime | None = None) -> Clock:
    """The system clock, or one stopped at ``now`` (ISO-8601 with a zone)."""
    if now is None:
        return SystemClock()
    if isinstance(now, str):
        try:
            now = parse_instant(now)
        except ValueError as exc:
            raise WiringError(f"--now: {exc}") from exc
    return FixedClock(now)


def build_executor(spec: str | None, clock: Clock) -> ActionExecutor:
    """``memory`` (dry runs), or the HTTP intents API at a URL; spec falls back to the env."""
    chosen = (spec or os.environ.get(EXECUTOR_ENV) or "").strip()
    if not chosen:
        raise WiringError(
            f"no action executor: pass --executor URL or set {EXECUTOR_ENV} "
            "(`--executor memory` for a local dry run)"
        )
    if chosen == "memory":
        from orchestrator.adapters.memory_executor import MemoryExecutor

        return MemoryExecutor(clock)
    from orchestrator.adapters.http_executor import DEFAULT_TIMEOUT, HttpExecutor

    raw_timeout = os.environ.get(EXECUTOR_TIMEOUT_ENV, "")
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
        return HttpExecutor(chosen, timeout=timeout)
    except ValueError as exc:
        raise WiringError(f"executor: {exc}") from exc


def default_worker_id() -> str:
    """``host:pid:random``: unique per running worker, readable in the ledger."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Orchestrator:
    """The wired parts; ``close()`` (or ``with``) releases the store."""

    store: ManagedStore
    runtime: PolicyRuntime
    accounts: AccountFacts
    clock: Clock
    service: PlanService
    executor: ActionExecutor | None = None

    def scheduler(self, settings: SchedulerSettings | None = None) -> Scheduler:
        """A scheduler over the wired executor (``WiringError`` if none was configured)."""
        if self.executor is None:
            raise WiringError("no action executor was configured")
        return Scheduler(self.service, self.executor, settings)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build(
    *,
    store_url: str | None = None,
    policies: Sequence[str] | None = None,
    accounts: str | None = None,
    executor: str | None = None,
    now: str | datetime | None = None,
    with_executor: bool = False,
    runtime: PolicyRuntime | None = None,
) -> Orchestrator:
    """Wire everything; the executor only when ``with_executor`` (verbs that dispatch).

    ``runtime`` reuses an already compiled bundle (a warm Lambda, a long-running loop).
    """
    compiled = runtime or load_runtime(policies)
    clock = build_clock(now)
    facts = build_accounts(accounts)
    chosen_executor = build_executor(executor, clock) if with_executor else None
    store = open_store(store_url or os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL)
    service = PlanService(store, compiled, facts, clock)
    return Orchestrator(store, compiled, facts, clock, service, chosen_executor)
