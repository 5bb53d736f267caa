"""Options and error handling shared by the verbs that load a bundle and read inputs.

Kept free of heavy imports so that ``planpolicy --help`` stays fast; the
engine is imported when a verb runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planpolicy.diagnostics import Diagnostic
    from planpolicy.model import PolicyBundle

__all__ = ["DEFAULT_POLICY_PATHS", "add_policies_option", "load_policies", "print_problems"]

DEFAULT_POLICY_PATHS = ("policies", "plan_types")


def add_policies_option(parser: argparse.ArgumentParser) -> None:
    """``--policies DIR`` (repeatable; default ``policies/`` and ``plan_types/``)."""
    parser.add_argument(
        "--policies",
        action="append",
        metavar="DIR",
        help="policy file or directory, repeatable (default: policies/ plan_types/)",
    )


def print_problems(prog: str, diagnostics: Sequence[Diagnostic], what: str) -> None:
    """Report located problems on stderr, one per line, then a one-line summary."""
    for diagnostic in diagnostics:
        print(f"{diagnostic}", file=sys.stderr)
        if diagnostic.hint:
            print(f"  hint: {diagnostic.hint}", file=sys.stderr)
    print(f"planpolicy {prog}: error: {what}", file=sys.stderr)


def load_policies(prog: str, paths: Sequence[str] | None) -> PolicyBundle | None:
    """Compile the policy bundle, or print why it does not compile and return ``None``."""
    from planpolicy.compiler import compile_bundle

    result = compile_bundle(list(paths or DEFAULT_POLICY_PATHS))
    if result.bundle is None:
        errors = [d for d in result.diagnostics if d.is_error] or list(result.diagnostics)
        shown = ", ".join(f"`{p}`" for p in (paths or DEFAULT_POLICY_PATHS))
        print_problems(prog, errors, f"the policy bundle in {shown} does not compile")
    return result.bundle
