"""``planpolicy check PLAN_FILE --context CONTEXT_FILE``: may this plan activate, and why not.

Exit codes: 0 the plan can activate, 3 the gate denies it, 1 the policy
bundle does not compile, 2 a usage error or an unreadable plan or context.
"""

from __future__ import annotations

import argparse
import sys

from planpolicy.cli import EXIT_DENY, EXIT_FAIL, EXIT_OK, EXIT_USAGE
from planpolicy.commands._common import add_policies_option, load_policies, print_problems

NAME = "check"
HELP = "run the policy gate on a plan and print the decision with every reason"


EPILOG = (
    "exit codes: 0 the plan can activate, 3 the gate denies it, "
    "1 the policy bundle does not compile, 2 usage error or unreadable plan or context file"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("plan", metavar="PLAN_FILE", help="the plan, as YAML or JSON")
    parser.add_argument(
        "--context",
        required=True,
        metavar="CONTEXT_FILE",
        help="what is known at evaluation time: now, account, signals, active_plans",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also show every rule evaluated, its inputs and result",
    )
    add_policies_option(parser)


def run(args: argparse.Namespace) -> int:
    return run_check(args, explain=args.explain, prog=NAME)


def run_check(args: argparse.Namespace, *, explain: bool, prog: str) -> int:
    """Shared by ``check`` and ``explain``."""
    from planpolicy.facts import load_facts
    from planpolicy.gate import Gate
    from planpolicy.inputs import InputError, read_plan
    from planpolicy.render import decision_json, decision_text

    try:
        plan = read_plan(args.plan)
    except InputError as exc:
        print_problems(prog, exc.diagnostics, f"cannot use the plan file `{args.plan}`")
        return EXIT_USAGE
    try:
        facts = load_facts(args.context)
    except InputError as exc:
        print_problems(prog, exc.diagnostics, f"cannot use the context file `{args.context}`")
        return EXIT_USAGE
    bundle = load_policies(prog, args.policies)
    if bundle is None:
        return EXIT_FAIL
    decision = Gate(bundle).evaluate(plan, facts, explain=explain)
    if args.format == "json":
        sys.stdout.write(decision_json(plan, decision, explain=explain))
    else:
        sys.stdout.write(decision_text(plan, decision, bundle, explain=explain))
    return EXIT_OK if decision.can_activate else EXIT_DENY
