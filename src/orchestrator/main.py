"""``plan-orchestrator``: the orchestrator's command line.

Exit status: 0 success; 1 the command ran and found problems (e.g. a tampered
ledger, a plan a tick could not process); 2 usage error or bad store URL; 3
store error (missing database or tables, plan not found, backend unavailable);
4 refused by policy (invalid transition, authority or gate guard, activation
rejected); 5 conflict (the plan changed meanwhile, or another plan holds the
activation guard). See :mod:`orchestrator.commands.runtime`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator.commands import REGISTRY
from orchestrator.errors import InvalidStoreUrl, StoreError

__all__ = [
    "EXIT_FOUND_PROBLEMS",
    "EXIT_OK",
    "EXIT_STORE_ERROR",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FOUND_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_STORE_ERROR = 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered verb."""
    parser = argparse.ArgumentParser(
        prog="plan-orchestrator",
        description="Run and inspect the revenue plan orchestrator.",
    )
    subparsers = parser.add_subparsers(dest="verb", required=True)
    for register in REGISTRY:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (errors are printed, never raised)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except InvalidStoreUrl as exc:
        print(f"plan-orchestrator: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"plan-orchestrator: error: {exc.message}", file=sys.stderr)
        return EXIT_STORE_ERROR
    return status


if __name__ == "__main__":
    sys.exit(main())
