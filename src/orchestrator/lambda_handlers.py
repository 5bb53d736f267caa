"""AWS Lambda entry points of the orchestrator.

``poll_handler`` is the target of an EventBridge schedule rule (for example
``rate(1 minute)``): each invocation runs one poll pass against the store named
by ``PLANSTORE_URL`` (the DynamoDB store in production) and returns the
summary. Configuration comes from the environment only:

============================  ==================================================
variable                      meaning
============================  ==================================================
``PLANSTORE_URL``             store URL, e.g. ``dynamodb://prod-?region=eu-west-1`` (required)
``PLANPOLICY_POLICIES``       policy directories inside the package, ``:``-separated
                              (default ``policies:plan_types``)
``PLANPOLICY_ACCOUNTS``       account facts directory (default ``accounts``)
``PLANPOLICY_EXECUTOR_URL``   the execution service's base URL (required)
``PLANPOLICY_EXECUTOR_TIMEOUT``  seconds before an executor call counts as ambiguous
``PLANPOLICY_METRIC_NAMESPACE``  when set, each pass logs CloudWatch metrics in the
                              embedded metric format: ``PlansDue``, ``PlansPastDue``,
                              ``TickErrors``
============================  ==================================================

``PlansPastDue`` counts the plans still due more than 15 minutes after their
due time once the pass is over: plans that no worker manages to advance.

The compiled bundle and the store client are kept across warm invocations (a
changed configuration rebuilds them). Time is the system clock: the event's
``time`` is when EventBridge scheduled the poll, reported back in the summary.
Overlapping invocations are safe: per-plan leases and fencing keep one worker
per plan, and the executor deduplicates by idempotency key. A configuration
error raises (the invocation fails and shows in the function's error metric).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from orchestrator.scheduler import SchedulerSettings
from orchestrator.stores import STORE_URL_ENV
from orchestrator.wiring import (
    ACCOUNTS_ENV,
    EXECUTOR_ENV,
    EXECUTOR_TIMEOUT_ENV,
    POLICIES_ENV,
    Orchestrator,
    WiringError,
    build,
    default_worker_id,
)

__all__ = ["METRIC_NAMESPACE_ENV", "PAST_DUE_GRACE", "STOP_MARGIN_MS", "poll_handler", "reset"]

log = logging.getLogger(__name__)

METRIC_NAMESPACE_ENV = "PLANPOLICY_METRIC_NAMESPACE"
PAST_DUE_GRACE = timedelta(minutes=15)
"""A plan due longer ago than this after a pass counts as past due."""

STOP_MARGIN_MS = 10_000
"""A pass takes no new plan when the invocation has less time left than this."""

_CONFIG_VARS = (STORE_URL_ENV, POLICIES_ENV, ACCOUNTS_ENV, EXECUTOR_ENV, EXECUTOR_TIMEOUT_ENV)
_lock = threading.Lock()
_warm: tuple[tuple[str, ...], Orchestrator] | None = None


def _orchestrator() -> Orchestrator:
    """The wired orchestrator of this container, rebuilt when the configuration changed."""
    global _warm  # noqa: PLW0603 -- one per Lambda container, reused while warm
    config = tuple(os.environ.get(name, "") for name in _CONFIG_VARS)
    if _warm is not None and _warm[0] == config:
        return _warm[1]
    if not os.environ.get(STORE_URL_ENV):
        raise WiringError(f"{STORE_URL_ENV} is not set")
    if not os.environ.get(EXECUTOR_ENV):
        raise WiringError(f"{EXECUTOR_ENV} is not set")
    reset()
    wired = build(with_executor=True)
    _warm = (config, wired)
    return wired


def reset() -> None:
    """Close the warm store (tests; a configuration change)."""
    global _warm  # noqa: PLW0603
    if _warm is not None:
        _warm[1].close()
        _warm = None


def _event_time(event: Mapping[str, Any]) -> str | None:
    value = event.get("time")
    return value if isinstance(value, str) else None


def _deadline(context: Any) -> Callable[[], bool] | None:
    """Stop taking plans when less than the margin of the invocation's time is left."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return lambda: int(remaining()) < STOP_MARGIN_MS


def poll_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """One poll pass for an EventBridge scheduled event; the summary as a dict.

    Returns ``{"now", "scheduled_time", "worker", "due", <event counts>..., "problems"}``.
    """
    with _lock:
        wired = _orchestrator()
        worker = default_worker_id()
        request_id = getattr(context, "aws_request_id", None)
        if isinstance(request_id, str) and request_id:
            worker = f"lambda:{request_id}"
        scheduler = wired.scheduler(SchedulerSettings(worker_id=worker, shuffle=True))
        now = wired.clock.now()
        summary = scheduler.tick(now, should_stop=_deadline(context))
        past_due = len(wired.store.due_plans(now - PAST_DUE_GRACE, limit=500))
    result: dict[str, Any] = {
        "now": now.isoformat().replace("+00:00", "Z"),
        "scheduled_time": _event_time(event),
        "worker": worker,
        **summary.as_dict(),
        "past_due": past_due,
        "problems": list(summary.problems),
    }
    log.info("poll pass: %s", result)
    namespace = os.environ.get(METRIC_NAMESPACE_ENV)
    if namespace:
        _emit_metrics(namespace, due=summary.due, past_due=past_due, errors=summary.errors)
    return result


def _emit_metrics(namespace: str, *, due: int, past_due: int, errors: int) -> None:
    """One line in CloudWatch's embedded metric format (Lambda turns it into metrics)."""
    values = {"PlansDue": due, "PlansPastDue": past_due, "TickErrors": errors}
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                }
            ],
        },
        **values,
    }
    print(json.dumps(record, separators=(",", ":")), flush=True)
