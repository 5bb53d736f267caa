"""``plan-orchestrator tick``: one poll pass over the due plans, then a summary.

For a scheduled poll (cron, a systemd timer) or by hand. ``--now`` runs the
pass at a given instant instead of the system clock (replays, tests). Exit
status 1 when some plan could not be processed (each is named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from orchestrator.commands.runtime import add_executor_option, add_runtime_options, handled
from orchestrator.scheduler import SchedulerSettings, TickSummary
from orchestrator.wiring import build, default_worker_id

__all__ = ["register", "run", "settings_from"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tick`` verb."""
    parser = subparsers.add_parser(
        "tick",
        help="run one poll pass: activate approved plans, advance due ones",
        description=(
            "Run one poll pass: activate APPROVED plans the gate allows, evaluate due "
            "ACTIVE plans and advance their next runnable step. Prints a summary."
        ),
    )
    add_runtime_options(parser)
    add_executor_option(parser)
    parser.add_argument(
        "--now", metavar="ISO-8601", help="run the pass at this instant (default: the system clock)"
    )
    add_tuning_options(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def add_tuning_options(parser: argparse.ArgumentParser) -> None:
    """``--batch`` and ``--lease-seconds``."""
    parser.add_argument(
        "--batch", type=int, default=200, metavar="N", help="due plans read per page (1-500)"
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="per-plan lease duration (default 60)",
    )


def settings_from(args: argparse.Namespace) -> SchedulerSettings:
    """Scheduler settings from the common options (``ValueError`` if out of range)."""
    return SchedulerSettings(
        worker_id=args.worker or default_worker_id(),
        batch=args.batch,
        lease_ttl=timedelta(seconds=args.lease_seconds),
        shuffle=True,
    )


def print_summary(summary: TickSummary, when: str, fmt: str) -> None:
    """The summary as one line of text or a JSON object."""
    if fmt == "json":
        print(
            json.dumps({"now": when, **summary.as_dict(), "problems": summary.problems}),
            flush=True,
        )
    else:
        print(f"tick at {when}: {summary}", flush=True)
    for problem in summary.problems:
        print(f"plan-orchestrator: plan {problem}", file=sys.stderr)


@handled
def run(args: argparse.Namespace) -> int:
    """One pass; 0 when every due plan was processed, 1 otherwise."""
    from orchestrator.commands.runtime import EXIT_USAGE, fail

    try:
        settings = settings_from(args)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    with build(
        store_url=args.store,
        policies=args.policies,
        accounts=args.accounts,
        executor=args.executor,
        now=args.now,
        with_executor=True,
    ) as wired:
        now = wired.clock.now()
        summary = wired.scheduler(settings).tick(now)
    print_summary(summary, now.isoformat().replace("+00:00", "Z"), args.format)
    return 1 if summary.errors else 0
