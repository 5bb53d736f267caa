"""``plan-orchestrator plan ...``: operate plans by hand.

``create`` stores a plan file as a DRAFT; ``approve``, ``activate``, ``pause``,
``resume``, ``abort`` and ``approve-step`` are the lifecycle commands, each
checked against the AuthorityPolicy for the actor's roles and the plan's risk
and written to the ledger with the actor and reason; ``show`` and ``list``
read. Every command is scoped to one tenant.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.commands.runtime import (
    EXIT_REFUSED,
    add_runtime_options,
    fail,
    handled,
)
from orchestrator.errors import NotFound
from orchestrator.policy import PolicyRuntime
from orchestrator.wiring import Orchestrator, build
from planpolicy import Actor, RevenuePlanV1
from planpolicy.plan import PlanFileError

__all__ = ["read_plan_file", "register"]

_MAX_PLAN_FILE = 1 << 20
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "plan",
        help="create, approve, activate, pause, resume, abort, show and list plans",
        description="Operate plans by hand; every change is authority-checked and ledgered.",
    )
    verbs = parser.add_subparsers(dest="plan_verb", metavar="COMMAND", required=True)

    create = verbs.add_parser(
        "create",
        help="store a plan file as a new DRAFT",
        description=(
            "Store a plan (YAML or JSON, a RevenuePlanV1) as a new DRAFT. Missing "
            "created_at/updated_at default to now, owner and created_by to --actor, "
            "plan_type_version to the bundle's, expires_at to the plan type's maximum duration."
        ),
    )
    create.add_argument("--file", required=True, metavar="PLAN.yaml|json")
    _actor_options(create, reason_required=False)
    create.add_argument("--tenant", help="must match the file's tenant_id when given")
    create.add_argument("--format", choices=("text", "json"), default="text")
    add_runtime_options(create)
    create.set_defaults(run=run_create)

    for name, summary, needs_reason in (
        ("approve", "DRAFT -> APPROVED (a person the AuthorityPolicy allows)", False),
        (
            "activate",
            "APPROVED -> ACTIVE if the gate allows (else the rejection is ledgered)",
            False,
        ),
        ("pause", "ACTIVE -> PAUSED: nothing is dispatched", True),
        ("resume", "PAUSED -> ACTIVE, if the gate allows again", True),
        ("abort", "end the plan as ABORTED", True),
    ):
        command = verbs.add_parser(name, help=summary, description=summary)
        command.add_argument("plan_id", metavar="PLAN_ID")
        command.add_argument("--tenant", required=True)
        _actor_options(command, reason_required=needs_reason)
        command.add_argument(
            "--expected-version",
            type=int,
            metavar="N",
            help="refuse (exit 5) unless the plan is still at this version",
        )
        command.add_argument("--format", choices=("text", "json"), default="text")
        add_runtime_options(command)
        command.set_defaults(run=run_transition, trigger=name)

    step = verbs.add_parser(
        "approve-step",
        help="approve a human-touch step so that it may be dispatched",
        description="Approve one human-touch step of a plan (by step id or action type).",
    )
    step.add_argument("plan_id", metavar="PLAN_ID")
    step.add_argument("--step", required=True, metavar="STEP_ID|ACTION_TYPE")
    step.add_argument("--tenant", required=True)
    _actor_options(step, reason_required=False)
    step.add_argument("--expected-version", type=int, metavar="N")
    step.add_argument("--format", choices=("text", "json"), default="text")
    add_runtime_options(step)
    step.set_defaults(run=run_approve_step)

    show = verbs.add_parser("show", help="print one plan", description="Print one plan.")
    show.add_argument("plan_id", metavar="PLAN_ID")
    show.add_argument("--tenant", required=True)
    show.add_argument("--format", choices=("text", "json"), default="text")
    add_runtime_options(show)
    show.set_defaults(run=run_show)

    listing = verbs.add_parser(
        "list", help="list a tenant's plans", description="List a tenant's plans, one page."
    )
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--status", help="only plans in this state")
    listing.add_argument("--account", help="only plans for this account")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="page size (1-500)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    add_runtime_options(listing)
    listing.set_defaults(run=run_list)


def _actor_options(parser: argparse.ArgumentParser, *, reason_required: bool) -> None:
    parser.add_argument("--actor", required=True, metavar="USER", help="who is acting")
    parser.add_argument(
        "--roles", default="", metavar="R1,R2", help="the actor's roles, comma-separated"
    )
    parser.add_argument(
        "--reason", required=reason_required, default="", help="why, for the ledger"
    )


def _actor(args: argparse.Namespace) -> Actor:
    roles = frozenset(r.strip() for r in str(args.roles).split(",") if r.strip())
    return Actor(args.actor, roles)


def _wired(args: argparse.Namespace) -> Orchestrator:
    return build(store_url=args.store, policies=args.policies, accounts=args.accounts)


# --- create ---------------------------------------------------------------------


def _utc(value: Any) -> Any:
    """YAML gives naive datetimes for times without a zone: take them as UTC."""
    if isinstance(value, dict):
        return {str(k): _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_plan_file(
    path: str | Path, *, actor: Actor, now: datetime, runtime: PolicyRuntime
) -> RevenuePlanV1:
    """A plan from a YAML or JSON file with defaults filled in; ``PlanFileError`` if unusable."""
    where = str(path)
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_PLAN_FILE:
            raise PlanFileError(where, [f"file is larger than {_MAX_PLAN_FILE} bytes"])
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(where, [f"cannot read file: {exc}"]) from exc
    try:
        raw = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PlanFileError(where, [f"syntax error: {' '.join(str(exc).split())}"]) from exc
    if not isinstance(raw, dict):
        raise PlanFileError(where, ["a plan must be a mapping"])
    data: dict[str, Any] = _utc(raw)
    ptype = runtime.bundle.plan_type(str(data.get("plan_type", "")))
    if ptype is None:
        known = ", ".join(f"`{name}`" for name in sorted(runtime.bundle.plan_types)) or "none"
        raise PlanFileError(
            where, [f"`plan_type`: unknown plan type `{data.get('plan_type')}` (known: {known})"]
        )
    data.setdefault("created_at", now)
    data.setdefault("updated_at", now)
    data.setdefault("owner", actor.user_id)
    data.setdefault("created_by", actor.user_id)
    data.setdefault("plan_type_version", ptype.version)
    data.setdefault("expires_at", now + ptype.max_duration)
    try:
        return RevenuePlanV1.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"`{'.'.join(str(part) for part in err['loc']) or '(root)'}`: {err['msg'].lower()}"
            for err in exc.errors()
        ]
        raise PlanFileError(where, problems) from exc


@handled
def run_create(args: argparse.Namespace) -> int:
    """Store a plan file as a DRAFT and print its id."""
    actor = _actor(args)
    with _wired(args) as wired:
        plan = read_plan_file(args.file, actor=actor, now=wired.clock.now(), runtime=wired.runtime)
        if args.tenant and args.tenant != plan.tenant_id:
            raise PlanFileError(
                args.file,
                [f"`tenant_id` is `{plan.tenant_id}`, but --tenant says `{args.tenant}`"],
            )
        stored = wired.service.create(plan, actor, args.reason)
    _print_plan(stored, args.format, f"created plan {stored.plan_id}")
    return 0


# --- lifecycle commands ------------------------------------------------------------


@handled
def run_transition(args: argparse.Namespace) -> int:
    """approve / activate / pause / resume / abort one plan."""
    actor = _actor(args)
    trigger: str = args.trigger
    with _wired(args) as wired:
        service = wired.service
        version = args.expected_version
        if trigger == "activate":
            result = service.activate(
                args.tenant, args.plan_id, actor, args.reason, expected_version=version
            )
            if not result.activated:
                reasons = "; ".join(r.message for r in result.reasons) or "denied"
                if args.format == "json":
                    print(json.dumps(result.decision.as_dict() | {"activated": False}))
                return fail(
                    f"activation of plan `{args.plan_id}` rejected (it stays APPROVED): {reasons}",
                    EXIT_REFUSED,
                )
            plan = result.plan
        elif trigger == "approve":
            plan = service.approve(
                args.tenant, args.plan_id, actor, args.reason, expected_version=version
            )
        elif trigger == "pause":
            plan = service.pause(
                args.tenant, args.plan_id, actor, args.reason, expected_version=version
            )
        elif trigger == "resume":
            plan = service.resume(
                args.tenant, args.plan_id, actor, args.reason, expected_version=version
            )
        else:
            plan = service.abort(
                args.tenant, args.plan_id, actor, args.reason, expected_version=version
            )
    _print_plan(plan, args.format, f"plan {plan.plan_id}: {trigger} done")
    return 0


@handled
def run_approve_step(args: argparse.Namespace) -> int:
    """Approve one human-touch step, named by id or action type."""
    actor = _actor(args)
    with _wired(args) as wired:
        plan = wired.service.get(args.tenant, args.plan_id)
        step_id = _step_id(plan, args.step)
        if step_id is None:
            raise NotFound(args.tenant, f"{args.plan_id}/{args.step}", "step")
        updated = wired.service.approve_step(
            args.tenant,
            args.plan_id,
            step_id,
            actor,
            args.reason,
            expected_version=args.expected_version,
        )
    _print_plan(updated, args.format, f"plan {updated.plan_id}: step `{args.step}` approved")
    return 0


def _step_id(plan: RevenuePlanV1, wanted: str) -> uuid.UUID | None:
    try:
        as_id = uuid.UUID(wanted)
    except ValueError:
        step = plan.step_by_action(wanted)
        return step.step_id if step is not None else None
    return as_id if any(s.step_id == as_id for s in plan.steps) else None


# --- reads -------------------------------------------------------------------------


@handled
def run_show(args: argparse.Namespace) -> int:
    """Print one plan with its steps."""
    with _wired(args) as wired:
        plan = wired.service.get(args.tenant, args.plan_id)
    _print_plan(plan, args.format, None)
    return 0


@handled
def run_list(args: argparse.Namespace) -> int:
    """Print one page of a tenant's plans."""
    with _wired(args) as wired:
        try:
            page = wired.store.list_plans(
                args.tenant,
                status=args.status,
                account_id=args.account,
                limit=args.limit,
                cursor=args.cursor,
            )
        except ValueError as exc:  # the limit
            return fail(str(exc), 2)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "items": [p.model_dump(mode="json") for p in page.items],
                    "next_cursor": page.next_cursor,
                },
                indent=2,
            )
        )
        return 0
    for plan in page.items:
        due = plan.next_due_at.strftime(_TIME) if plan.next_due_at else "-"
        print(
            f"{plan.plan_id}  {plan.status:<9} {plan.plan_type:<20} account {plan.account_id}  "
            f"v{plan.version}  next due {due}"
        )
    print(
        f"{len(page.items)} plans"
        + (f"; next page: --cursor {page.next_cursor}" if page.next_cursor else "")
    )
    return 0


def _print_plan(plan: RevenuePlanV1, fmt: str, headline: str | None) -> None:
    if fmt == "json":
        print(json.dumps(plan.model_dump(mode="json"), indent=2))
        return
    if headline:
        print(headline)
    print(format_plan(plan), end="")


def format_plan(plan: RevenuePlanV1) -> str:
    """A plan as readable text: identity, status, times and one line per step."""

    def at(value: datetime | None) -> str:
        return value.strftime(_TIME) if value else "-"

    lines = [
        f"plan {plan.plan_id} (tenant {plan.tenant_id})",
        f"  {plan.plan_type} v{plan.plan_type_version} for account {plan.account_id}: "
        f"{plan.status} (version {plan.version})",
        f"  owner {plan.owner}, proposed by {plan.created_by}, "
        f"approved by {plan.approved_by or '-'}",
        f"  activated {at(plan.activated_at)}, expires {at(plan.expires_at)}, "
        f"next due {at(plan.next_due_at)}",
    ]
    if plan.completion_reason:
        lines.append(f"  ended {at(plan.ended_at)}: {plan.completion_reason}")
    for number, step in enumerate(plan.steps, start=1):
        extra = []
        if step.human_approved_by:
            extra.append(f"approved by {step.human_approved_by}")
        if step.due_at:
            extra.append(f"due {at(step.due_at)}")
        if step.skip_reason:
            extra.append(f"skipped: {step.skip_reason}")
        elif step.last_error:
            extra.append(f"last error: {step.last_error}")
        lines.append(
            f"  {number}. {step.action_type:<24} {step.status.value:<10} "
            f"attempts {step.attempts}  {step.step_id}"
            + (f"  ({'; '.join(extra)})" if extra else "")
        )
    return "\n".join(lines) + "\n"
