"""``plan-orchestrator run``: tick every ``--interval`` seconds until SIGTERM or SIGINT.

The bundle is compiled and the store opened once. A signal lets the plan in
hand finish (every plan change is one durable write; the plans the pass did
not reach stay due), then the loop closes the store and exits 0. A store that is briefly
unavailable is retried at the next interval; one that is missing or
uninitialised stops the loop (exit 3).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from orchestrator.commands.runtime import (
    EXIT_USAGE,
    add_executor_option,
    add_runtime_options,
    fail,
    handled,
)
from orchestrator.commands.tick import add_tuning_options, print_summary, settings_from
from orchestrator.errors import StoreError
from orchestrator.wiring import build

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` verb."""
    parser = subparsers.add_parser(
        "run",
        help="tick in a loop until SIGTERM/SIGINT",
        description=(
            "Run a poll pass every --interval seconds. SIGTERM or SIGINT finishes the "
            "current pass, closes the store and exits 0."
        ),
    )
    add_runtime_options(parser)
    add_executor_option(parser)
    parser.add_argument(
        "--interval",
        type=float,
        required=True,
        metavar="SECONDS",
        help="pause between the end of one pass and the start of the next",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only passes that found due plans"
    )
    add_tuning_options(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


@handled
def run(args: argparse.Namespace) -> int:
    """Loop until a signal; 0 after a clean stop."""
    if args.interval < 0:
        return fail("--interval must not be negative", EXIT_USAGE)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    passes = 0
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with build(
            store_url=args.store,
            policies=args.policies,
            accounts=args.accounts,
            executor=args.executor,
            with_executor=True,
        ) as wired:
            scheduler = wired.scheduler(settings)
            print(
                f"plan-orchestrator: worker `{settings.worker_id}` polling every "
                f"{args.interval:g}s (SIGTERM or SIGINT stops)",
                flush=True,
            )
            while not stop.is_set():
                now = wired.clock.now()
                try:
                    summary = scheduler.tick(now, should_stop=stop.is_set)
                except StoreError as exc:
                    if not exc.retryable:
                        raise
                    print(f"plan-orchestrator: store unavailable: {exc.message}", file=sys.stderr)
                else:
                    passes += 1
                    if summary.due or not args.quiet:
                        print_summary(summary, now.isoformat().replace("+00:00", "Z"), args.format)
                stop.wait(args.interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"plan-orchestrator: stopped after {passes} passes", flush=True)
    return 0
