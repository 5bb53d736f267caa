"""``planpolicy simulate SCENARIO``: dry-run plans over virtual time with the production engine.

Exit codes: 0 every expectation held; 1 an expectation failed (with
``--runs``: in any run) or the policy bundle does not compile; 2 a usage
error or an invalid scenario (its problems are printed with their locations).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from planpolicy.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from planpolicy.commands._common import add_policies_option, load_policies

_R = TypeVar("_R")

NAME = "simulate"
HELP = "dry-run plans over virtual time with the production engine (timeline, JSON trace, HTML)"
QUICK_EXIT = True  # one batch job, then exit: no heap teardown (see planpolicy.cli)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (kind: Scenario)")
    add_policies_option(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json", "html"),
        default="text",
        help="text: readable timeline; json: full trace with ledgers; html: a page with a chart",
    )
    parser.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument(
        "--tick",
        metavar="DURATION",
        help="poll interval modelled, e.g. 5m, 1h (default: the scenario's, else 5m)",
    )
    parser.add_argument(
        "--compare-policies",
        action="append",
        metavar="DIR",
        help="run again under these policies (repeatable, like --policies) and report where "
        "each plan's course first diverges",
    )
    parser.add_argument(
        "--runs",
        type=int,
        metavar="N",
        help="Monte Carlo: N runs drawing the scenario's probabilistic outcomes",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the draws (default 0); same seed, same result"
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="run every idle poll too (slower; the result is the same)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes one run may use, each taking whole accounts (default: one per CPU, at "
        "most 8, for 200 plans or more; at most 64); 1: this process only; the result is the same",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", action="store_true", default=None, help="show a progress bar on stderr"
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )


def _usage(message: str) -> int:
    print(f"planpolicy simulate: error: {message}", file=sys.stderr)
    return EXIT_USAGE


class ProgressBar:
    """A one-line ``\\r`` bar on a stream, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self._drawn = -1.0
        self._last = 0.0
        self._began = time.monotonic()

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if fraction < 1.0 and (now - self._last < 0.1 or fraction == self._drawn):
            return
        self._last, self._drawn = now, fraction
        filled = int(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self._began
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {elapsed:5.1f} s")
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar's line."""
        if self._drawn >= 0:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 20) + "\r")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Load the policies and the scenario, simulate, report; the exit code."""
    from planpolicy import simreport
    from planpolicy.lint.formats import format_text
    from planpolicy.scenario import ScenarioError, load_scenario, parse_duration
    from planpolicy.simulate import DEFAULT_TICK, SimOptions, compare, monte_carlo
    from planpolicy.simulate import run as simulate

    path = Path(args.scenario)
    if not path.is_file():
        return _usage(f"no such scenario file `{args.scenario}`")
    if args.runs is not None and args.runs < 1:
        return _usage("`--runs` must be at least 1")
    if args.jobs < 0:
        return _usage("`--jobs` must be 0 (auto) or more")
    if args.runs is not None and args.compare_policies:
        return _usage("`--runs` and `--compare-policies` do not go together")
    tick = None
    if args.tick is not None:
        try:
            tick = parse_duration(args.tick)
        except ValueError as exc:
            return _usage(f"`--tick`: {exc}")
        if tick.total_seconds() < 1:
            return _usage("`--tick` must be at least `1s`")
    bundle = load_policies(NAME, args.policies)
    if bundle is None:
        return EXIT_FAIL
    try:
        scenario = load_scenario(path, bundle)
    except ScenarioError as exc:
        sys.stderr.write(format_text(exc.diagnostics, files=1))
        print(f"planpolicy simulate: error: cannot run the scenario `{path}`", file=sys.stderr)
        return EXIT_USAGE
    for warning in scenario.warnings:
        print(str(warning), file=sys.stderr)
    tick = tick or scenario.tick or DEFAULT_TICK
    if scenario.horizon < tick:
        return _usage(f"the horizon is shorter than one tick (`{args.tick}`)")

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = ProgressBar(sys.stderr, scenario.name) if show else None
    progress: Callable[[float], None] | None = bar
    options = SimOptions(
        tick=tick, seed=args.seed, exact=args.exact, progress=progress, jobs=args.jobs
    )
    try:
        if args.compare_policies:
            other = load_policies(NAME, args.compare_policies)
            if other is None:
                return EXIT_FAIL
            try:
                other_scenario = load_scenario(path, other)
            except ScenarioError as exc:
                sys.stderr.write(format_text(exc.diagnostics, files=1))
                return _usage(f"the scenario `{path}` does not fit the other policies")
            compared = compare(scenario, bundle, other, options, right_scenario=other_scenario)
            text = _render(
                args.format,
                compared,
                simreport.compare_text,
                simreport.compare_json,
                simreport.compare_html,
            )
            ok = compared.ok
        elif args.runs is not None:
            spread = monte_carlo(scenario, bundle, args.runs, options)
            text = _render(
                args.format,
                spread,
                simreport.monte_carlo_text,
                simreport.monte_carlo_json,
                simreport.monte_carlo_html,
            )
            ok = spread.ok
        else:
            result = simulate(scenario, bundle, options)
            text = _render(
                args.format, result, simreport.run_text, simreport.run_json, simreport.run_html
            )
            ok = result.ok
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK if ok else EXIT_FAIL


def _render(
    fmt: str,
    result: _R,
    text: Callable[[_R], str],
    json: Callable[[_R], str],
    html: Callable[[_R], str],
) -> str:
    return {"text": text, "json": json, "html": html}[fmt](result)
