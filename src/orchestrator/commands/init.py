"""``plan-orchestrator init``: create the store's schema or tables (idempotent)."""

from __future__ import annotations

import argparse

from orchestrator.commands.options import add_store_option, opened_store

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``init`` verb."""
    parser = subparsers.add_parser(
        "init",
        help="create the plan store schema or tables (safe to repeat)",
        description="Create the plan store's tables or schema if missing and apply migrations.",
    )
    add_store_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Initialise the store; 0 on success."""
    with opened_store(args.store) as store:
        store.init()
    print(f"initialised plan store `{args.store}`")
    return 0
