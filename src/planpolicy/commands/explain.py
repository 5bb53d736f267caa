"""``planpolicy explain PLAN_FILE --context CONTEXT_FILE``: ``check --explain``.

Shows each rule the gate evaluated, the values it read and its result, so a
policy author sees *why*. Exit codes are those of ``check``.
"""

from __future__ import annotations

import argparse

from planpolicy.commands import check

NAME = "explain"
HELP = "like `check --explain`: show every rule evaluated, its inputs and its result"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    check.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return check.run_check(args, explain=True, prog=NAME)
