"""A worker that runs one tick and kills itself (SIGKILL) at a point of the step protocol.

Usage: ``python crash_tick.py --crash-at POINT --store URL --now ISO --executor URL
--accounts DIR --policies DIR [--policies DIR ...]``. The process is wired like
``plan-orchestrator tick`` (orchestrator.wiring) with
``SchedulerSettings.crash_at`` set; it exits 3 if the tick ends without reaching
the crash point.
"""

from __future__ import annotations

import argparse
import sys

from orchestrator.scheduler import CRASH_POINTS, SchedulerSettings
from orchestrator.wiring import build


def main(argv: list[str] | None = None) -> int:
    """Tick until the crash point kills the process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crash-at", required=True, choices=CRASH_POINTS)
    parser.add_argument("--store", required=True)
    parser.add_argument("--now", required=True)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--accounts", required=True)
    parser.add_argument("--policies", action="append", required=True)
    args = parser.parse_args(argv)
    with build(
        store_url=args.store,
        policies=args.policies,
        accounts=args.accounts,
        executor=args.executor,
        now=args.now,
        with_executor=True,
    ) as wired:
        settings = SchedulerSettings(worker_id="doomed-worker", crash_at=args.crash_at)
        summary = wired.scheduler(settings).tick(wired.clock.now())
    print(f"crash point `{args.crash_at}` not reached: {summary}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
