"""``planpolicy lint [PATH ...]``: report every problem in policy files."""

from __future__ import annotations

import argparse
import os
import sys

from planpolicy.diagnostics import DEFAULT_LIMIT

NAME = "lint"
HELP = "check policy files and report every problem with its location"
QUICK_EXIT = True  # one batch job, then exit: no heap teardown (see planpolicy.cli)
DEFAULT_PATHS = ("policies", "plan_types")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (default: policies/ plan_types/)",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "text", "github", "json", "sarif"),
        default="auto",
        help="output format (auto: github inside GitHub Actions, text elsewhere)",
    )
    parser.add_argument("--strict", action="store_true", help="warnings fail the run too")
    parser.add_argument(
        "--base", metavar="GIT_REF", help="flag changed documents whose version was not bumped"
    )
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help="maximum diagnostics reported"
    )
    parser.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes reading many files and checking many new expressions (default: "
        "one per CPU, at most 8, reading; two checking, with 2 or more CPUs); 1: this "
        "process only",
    )


MAX_AUTO_JOBS = 8
"""Most processes ``--jobs 0`` (auto) reads files in."""


def auto_jobs(cpus: int | None) -> int:
    """Processes reading files with ``--jobs 0`` on a machine with ``cpus`` CPUs.

    Workers send back only each file's text and plain data (positions are
    found again only for a reported problem, see :mod:`planpolicy.readahead`),
    so one per CPU wins from 2 CPUs on.
    """
    return 1 if cpus is None or cpus < 2 else min(cpus, MAX_AUTO_JOBS)


def auto_check_jobs(cpus: int | None) -> int:
    """Processes checking new expressions with ``--jobs 0``: two with 2 CPUs or more.

    A worker only sends back small check results, so unlike reading files it
    wins on 2 CPUs (see :mod:`planpolicy.celahead`).
    """
    return 2 if cpus is not None and cpus >= 2 else 1


def _skip_pydantic_plugins() -> None:
    """Do not look for pydantic plugins in this process (unless the user chose otherwise).

    pydantic's plugin loader scans the metadata of every installed
    distribution for entry points when the first model is built. lint builds
    models only to phrase what only they reject, and uses no plugin. Setting the variable
    only here keeps it to ``planpolicy lint`` processes (and the ``git`` it
    may start); an explicit ``PYDANTIC_DISABLE_PLUGINS`` is left alone.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def run(args: argparse.Namespace) -> int:
    _skip_pydantic_plugins()
    from planpolicy.collector import long_operation

    if args.limit < 1:
        print("planpolicy lint: error: --limit must be at least 1", file=sys.stderr)
        return 2
    if args.jobs < 0:
        print("planpolicy lint: error: --jobs must be 0 (auto) or more", file=sys.stderr)
        return 2
    jobs = args.jobs or auto_jobs(os.cpu_count())
    check_jobs = args.jobs or auto_check_jobs(os.cpu_count())
    # Loaded documents (and their node trees) live until exit and linting makes
    # little cyclic garbage (~15,000 objects for 1,000 plan types, no cache):
    # collections would only rescan them, so none runs during the run, nor
    # while its modules are imported (a tenth of linting one file).
    with long_operation(pause=True):
        from planpolicy.lint import run_lint
        from planpolicy.lint.formats import FORMATS, auto_format

        report = run_lint(
            args.paths or list(DEFAULT_PATHS),
            base=args.base,
            limit=args.limit,
            jobs=jobs,
            check_jobs=check_jobs,
        )
    fmt = auto_format() if args.format == "auto" else args.format
    text = FORMATS[fmt](report.diagnostics, files=len(report.files), dropped=report.dropped)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return report.exit_code(strict=args.strict)
