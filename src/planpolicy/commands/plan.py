"""``planpolicy plan new|show``: write a new DRAFT plan file, or show and convert one.

``plan new`` writes a DRAFT (nothing is ever created approved) with the plan
type's steps, each with a fresh ``step_id`` and marked ``human_touch`` where
the policy requires it. ``plan show`` prints a plan with its derived risk, or
re-writes it as YAML or JSON.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from planpolicy.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from planpolicy.commands._common import add_policies_option, load_policies, print_problems

NAME = "plan"
HELP = "write a new DRAFT plan file (`plan new`) or show one (`plan show`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="plan_action", metavar="ACTION", required=True)
    new = sub.add_parser("new", help="print a new DRAFT plan of a plan type")
    new.add_argument("--plan-type", required=True, help="plan type name, e.g. RENEWAL_DEFENSE")
    new.add_argument("--account", required=True, help="account id")
    new.add_argument("--tenant", required=True, help="tenant id")
    new.add_argument("--owner", required=True, help="user accountable for the plan")
    new.add_argument("--created-by", help="proposer (default: the owner)")
    new.add_argument("--plan-id", help="plan id (default: a new UUID)")
    new.add_argument("--objective", default="", help="the goal, in words")
    new.add_argument(
        "--steps",
        help="comma-separated action types (default: every step of the plan type, in order)",
    )
    new.add_argument("--expires-in-days", type=int, help="default: the plan type's maximum")
    new.add_argument("--now", help="creation time, ISO-8601 (default: the current time)")
    new.add_argument("--format", choices=("yaml", "json"), default="yaml")
    add_policies_option(new)
    show = sub.add_parser("show", help="print a plan with its derived risk, or convert it")
    show.add_argument("plan", metavar="PLAN_FILE")
    show.add_argument("--format", choices=("text", "yaml", "json"), default="text")
    add_policies_option(show)


def run(args: argparse.Namespace) -> int:
    if args.plan_action == "new":
        return _new(args)
    return _show(args)


def _usage(message: str) -> int:
    print(f"planpolicy plan: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _new(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from planpolicy.plan import PlanStep, RevenuePlanV1, dump_plan

    try:
        now = datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now else None
    except ValueError:
        return _usage(f"`--now` is not an ISO-8601 time: `{args.now}`")
    bundle = load_policies("plan", args.policies)
    if bundle is None:
        return EXIT_FAIL
    ptype = bundle.plan_type(args.plan_type)
    if ptype is None:
        known = ", ".join(f"`{n}`" for n in sorted(bundle.plan_types))
        return _usage(f"unknown plan type `{args.plan_type}` (known: {known})")
    names = [s.strip() for s in args.steps.split(",")] if args.steps else list(ptype.step_order)
    unknown = [n for n in names if n not in ptype.steps]
    if unknown:
        return _usage(f"`{ptype.name}` has no step `{unknown[0]}`")
    days = args.expires_in_days if args.expires_in_days is not None else ptype.max_duration.days
    created = now.astimezone(UTC) if now and now.tzinfo else (now or datetime.now(UTC))
    created = created.replace(tzinfo=UTC, microsecond=0)
    steps = [
        PlanStep(
            action_type=n,
            human_touch=ptype.steps[n].human_touch
            or bundle.risk.requires_human_touch(ptype.steps[n].risk),
        )
        for n in names
    ]
    fields = {"plan_id": args.plan_id} if args.plan_id else {}
    try:
        plan = RevenuePlanV1(
            **fields,
            tenant_id=args.tenant,
            account_id=args.account,
            plan_type=ptype.name,
            plan_type_version=ptype.version,
            objective=args.objective,
            steps=steps,
            owner=args.owner,
            created_by=args.created_by or args.owner,
            created_at=created,
            updated_at=created,
            expires_at=created + timedelta(days=days),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        return _usage(f"`{'.'.join(map(str, err['loc']))}`: {err['msg'].lower()}")
    sys.stdout.write(dump_plan(plan, fmt=args.format))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from planpolicy.inputs import InputError, read_plan
    from planpolicy.plan import dump_plan

    try:
        plan = read_plan(args.plan)
    except InputError as exc:
        print_problems("plan", exc.diagnostics, f"cannot use the plan file `{args.plan}`")
        return EXIT_USAGE
    if args.format in ("yaml", "json"):
        sys.stdout.write(dump_plan(plan, fmt=args.format))
        return EXIT_OK
    bundle = load_policies("plan", args.policies)
    if bundle is None:
        return EXIT_FAIL
    ptype = bundle.plan_type(plan.plan_type)
    print(
        f"plan `{plan.plan_id}`: {plan.plan_type} v{plan.plan_type_version}, status {plan.status}"
    )
    print(f"  tenant `{plan.tenant_id}`, account `{plan.account_id}`, owner `{plan.owner}`")
    print(f"  created by `{plan.created_by}` at {plan.created_at.isoformat()}")
    if plan.approved_by:
        print(f"  approved by `{plan.approved_by}`")
    print(f"  expires at {plan.expires_at.isoformat()}")
    print(f"  risk: {bundle.plan_risk(plan) or 'unknown'} (the highest risk of its steps)")
    if plan.objective:
        print(f"  objective: {plan.objective}")
    print("  steps:")
    for step in plan.steps:
        spec = ptype.steps.get(step.action_type) if ptype else None
        risk = spec.risk if spec else "not allowed"
        touch = ", human touch" if step.human_touch else ""
        print(
            f"    {step.step_id}  {step.action_type:<26} {risk:<7} "
            f"{step.status.value} (attempts {step.attempts}){touch}"
        )
    return EXIT_OK
