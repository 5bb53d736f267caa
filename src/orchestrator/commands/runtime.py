"""Options and error handling shared by the verbs that run plans (``tick``, ``run``, ``plan``).

Errors a user can cause print one line, ``plan-orchestrator: error: ...``, and
exit with a documented status (see :mod:`orchestrator.main` and the README):

====  ====================================================================
code  meaning
====  ====================================================================
0     done
1     the command ran and found problems (a tick could not process a plan)
2     usage: bad arguments, plan file, policy bundle, store URL or ``--now``
3     store: plan not found, database or tables missing, backend unavailable
4     refused: invalid transition, authority or gate guard denied, activation rejected
5     conflict: the plan changed meanwhile (re-read and retry), or another plan
      holds the activation guard
====  ====================================================================
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

from orchestrator.commands.options import add_store_option
from orchestrator.errors import GuardConflict, VersionConflict
from orchestrator.wiring import (
    ACCOUNTS_ENV,
    DEFAULT_ACCOUNTS,
    DEFAULT_POLICIES,
    EXECUTOR_ENV,
    POLICIES_ENV,
    WiringError,
)
from planpolicy.plan import PlanFileError

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_REFUSED",
    "add_executor_option",
    "add_runtime_options",
    "fail",
    "handled",
]

EXIT_USAGE = 2
EXIT_REFUSED = 4
EXIT_CONFLICT = 5

Run = Callable[[argparse.Namespace], int]


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--policies`` (repeatable) and ``--accounts``."""
    add_store_option(parser)
    parser.add_argument(
        "--policies",
        metavar="DIR",
        action="append",
        help=(
            f"policy directory or file, repeatable (default: ${POLICIES_ENV} or "
            f"{' '.join(DEFAULT_POLICIES)})"
        ),
    )
    parser.add_argument(
        "--accounts",
        metavar="DIR",
        help=(
            "directory of account facts, <account_id>.yaml or <tenant>/<account_id>.yaml "
            f"(default: ${ACCOUNTS_ENV} or {DEFAULT_ACCOUNTS}/)"
        ),
    )


def add_executor_option(parser: argparse.ArgumentParser) -> None:
    """``--executor URL|memory`` (default ``$PLANPOLICY_EXECUTOR_URL``) and ``--worker``."""
    parser.add_argument(
        "--executor",
        metavar="URL",
        default=os.environ.get(EXECUTOR_ENV),
        help=(
            f"the execution service's base URL (default: ${EXECUTOR_ENV}); "
            "`memory` executes in-process, for local dry runs only"
        ),
    )
    parser.add_argument(
        "--worker",
        metavar="ID",
        help="worker id recorded on leases and in the ledger (default: host:pid:random)",
    )


def fail(message: str, status: int) -> int:
    """Print ``message`` as the command's error and return ``status``."""
    print(f"plan-orchestrator: error: {message}", file=sys.stderr)
    return status


def handled(run: Run) -> Run:
    """Map the errors a user can cause to one line and an exit status (store errors: main)."""
    from planpolicy import LifecycleError

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except WiringError as exc:
            return fail(exc.message, EXIT_USAGE)
        except PlanFileError as exc:
            return fail(str(exc), EXIT_USAGE)
        except LifecycleError as exc:  # InvalidTransition, GuardDenied
            return fail(str(exc), EXIT_REFUSED)
        except (VersionConflict, GuardConflict) as exc:
            return fail(exc.message, EXIT_CONFLICT)

    return wrapper
