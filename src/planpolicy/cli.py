"""The ``planpolicy`` command line: one module per verb in :mod:`planpolicy.commands`.

Exit codes (documented in the README): 0 success, 1 problems found (lint
errors, failed tests or expectations), 2 usage error, 3 the gate denies.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from planpolicy import __version__

__all__ = ["COMMANDS", "EXIT_DENY", "EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_DENY = 3

# Verb modules, in help order. Each defines NAME, HELP, add_arguments(parser), run(args) -> int.
COMMANDS: tuple[str, ...] = (
    "planpolicy.commands.lint",
    "planpolicy.commands.check",
    "planpolicy.commands.explain",
    "planpolicy.commands.test",
    "planpolicy.commands.plan",
    "planpolicy.commands.propose",
    "planpolicy.commands.bundle",
    "planpolicy.commands.schema",
    "planpolicy.commands.simulate",
)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every verb registered, or only ``verb``'s.

    A verb module is named after its verb (``NAME``), so running one verb
    imports and sets up that verb alone; ``--help`` and unknown verbs get the
    full parser.
    """
    parser = argparse.ArgumentParser(
        prog="planpolicy",
        description="Rules-as-data policy engine for goal-level revenue plans.",
    )
    parser.add_argument("--version", action="version", version=f"planpolicy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        if verb is not None and module_name.rpartition(".")[2] != verb:
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = words[0] if words else None
    known = {name.rpartition(".")[2] for name in COMMANDS}
    parser = build_parser(first if first in known else None)
    args = parser.parse_args(words)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args._run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
