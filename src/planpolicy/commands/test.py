"""``planpolicy test [PATH ...]``: run the policy tests written in YAML.

Exit codes: 0 every case passed, 1 a case failed or is in error (or the
bundle does not compile, or no test was found), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from planpolicy.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from planpolicy.commands._common import add_policies_option, load_policies

NAME = "test"
HELP = "run policy tests (YAML cases: expected decisions and lifecycle transitions)"
DEFAULT_TEST_PATHS = ("tests/policies",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "exit codes: 0 every case passed, 1 a case failed or is in error (or no test files, "
        "or the bundle does not compile), 2 usage error"
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="test files or directories (default: tests/policies/)",
    )
    parser.add_argument("--format", choices=("text", "junit"), default="text")
    parser.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    add_policies_option(parser)


def run(args: argparse.Namespace) -> int:
    from planpolicy.testing import REPORTS, discover_tests, run_tests

    paths = args.paths or list(DEFAULT_TEST_PATHS)
    absent = [p for p in paths if not Path(p).exists()]
    if absent:
        print(f"planpolicy test: error: no such file or directory `{absent[0]}`", file=sys.stderr)
        return EXIT_USAGE
    if not discover_tests(paths):
        shown = ", ".join(f"`{p}`" for p in paths)
        print(f"planpolicy test: error: no policy test files in {shown}", file=sys.stderr)
        return EXIT_FAIL
    bundle = load_policies(NAME, args.policies)
    if bundle is None:
        return EXIT_FAIL
    result = run_tests(paths, bundle)
    text = REPORTS[args.format](result)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK if result.ok else EXIT_FAIL
