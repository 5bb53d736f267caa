"""``planpolicy propose --account ACCOUNT_FILE``: propose a DRAFT plan for an account.

The proposer (``rules``, the default, or ``bedrock``) drafts a candidate; the
review validates and bounds it, forces it to a DRAFT, runs the policy gate as
if it were approved and a short dry run. Without ``--store`` nothing is
written; with it the DRAFT and its ``created`` and ``proposal`` ledger entries
go to the plan store, or a rejection record to the rejection log next to it.

Exit codes: 0 a DRAFT was proposed, 3 the proposal was rejected (nothing but
a rejection record is stored), 1 the bundle does not compile or the store
fails, 2 a usage error or an unusable account file.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from planpolicy.cli import EXIT_DENY, EXIT_FAIL, EXIT_OK, EXIT_USAGE
from planpolicy.commands._common import add_policies_option, load_policies, print_problems

if TYPE_CHECKING:
    from planpolicy.model import PolicyBundle
    from planpolicy.proposal import ProposalRequest, ProposalResult, Proposer

NAME = "propose"
HELP = "propose a DRAFT plan for an account (rules or Bedrock), gated and dry-run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account",
        required=True,
        metavar="ACCOUNT_FILE",
        help="the account: tenant_id, owner, account, signals, history, goals (YAML or JSON)",
    )
    parser.add_argument("--proposer", choices=("rules", "bedrock"), default="rules")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--owner", help="user accountable for the plan (default: the file's)")
    parser.add_argument("--now", help="proposal time, ISO-8601 (default: the file's, else now)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="store the DRAFT (or the rejection record) in this plan store, "
        "e.g. sqlite:///planstore.db (default: store nothing)",
    )
    parser.add_argument(
        "--rejection-log",
        metavar="PATH",
        help="JSON-lines file for rejection records (default: next to the SQLite store)",
    )
    parser.add_argument(
        "--model-id", help="Bedrock model id (default: $PLANPOLICY_BEDROCK_MODEL_ID)"
    )
    parser.add_argument("--region", help="Bedrock region (default: the AWS configuration's)")
    add_policies_option(parser)


def _usage(message: str) -> int:
    print(f"planpolicy propose: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _request(args: argparse.Namespace) -> ProposalRequest | int:
    from planpolicy.diagnostics import Diagnostic
    from planpolicy.inputs import INPUT_INVALID, InputError, located, read_document
    from planpolicy.proposal import ProposalInputError, ProposalRequest

    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            return _usage(f"`--now` is not an ISO-8601 time: `{args.now}`")
    try:
        doc = read_document(args.account, "account")
    except InputError as exc:
        print_problems(NAME, exc.diagnostics, f"cannot use the account file `{args.account}`")
        return EXIT_USAGE
    raw = doc.data
    if now is None and not (isinstance(raw, dict) and raw.get("now")):
        now = datetime.now(UTC).replace(microsecond=0)
    try:
        return ProposalRequest.from_mapping(raw, owner=args.owner, now=now)
    except ProposalInputError as exc:
        problems = [
            Diagnostic(INPUT_INVALID, f"account: {message}", located(doc, (), path))
            for path, message in exc.problems
        ]
        print_problems(NAME, problems, f"cannot use the account file `{args.account}`")
        return EXIT_USAGE


def _proposer(args: argparse.Namespace) -> Proposer:
    if args.proposer == "bedrock":
        from dataclasses import replace

        from planpolicy.proposers.bedrock import BedrockProposer, BedrockSettings

        settings = BedrockSettings()
        if args.model_id:
            settings = replace(settings, model_id=args.model_id)
        if args.region:
            settings = replace(settings, region=args.region)
        return BedrockProposer(settings=settings)
    from planpolicy.proposers.rules import RulesProposer

    return RulesProposer()


def run(args: argparse.Namespace) -> int:
    request = _request(args)
    if isinstance(request, int):
        return request
    bundle = load_policies(NAME, args.policies)
    if bundle is None:
        return EXIT_FAIL
    proposer = _proposer(args)
    if args.store:
        return _run_stored(args, bundle, request, proposer)
    from orchestrator.proposals import SimulatedDryRun
    from planpolicy.proposal import ProposerError, ProposerOutput, review

    output: ProposerOutput | ProposerError
    try:
        output = proposer.propose(bundle, request)
    except ProposerError as exc:
        output = exc
    result = review(bundle, request, proposer, output, dry_run=SimulatedDryRun())
    stored = "not stored (pass `--store URL` to store it)"
    return _report(args, bundle, result, stored, {})


def _run_stored(
    args: argparse.Namespace, bundle: PolicyBundle, request: ProposalRequest, proposer: Proposer
) -> int:
    from orchestrator.accounts import StaticAccounts
    from orchestrator.clock import ManualClock
    from orchestrator.errors import StoreError
    from orchestrator.policy import PolicyRuntime
    from orchestrator.proposal_log import JsonlRejectionLog, rejection_log_for
    from orchestrator.proposals import ProposalService
    from orchestrator.service import PlanService
    from orchestrator.stores import open_store

    try:
        store = open_store(args.store)
    except StoreError as exc:
        return _usage(exc.message)
    log = rejection_log_for(args.store, args.rejection_log)
    try:
        plans = PlanService(
            store, PolicyRuntime(bundle), StaticAccounts(), ManualClock(request.now)
        )
        outcome = ProposalService(plans, log).propose(request, proposer)
    except StoreError as exc:
        print(f"planpolicy propose: error: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        store.close()
    where: dict[str, Any] = {"store": args.store}
    if outcome.plan is not None:
        entries = ["created", "proposal"]
        stored = f"stored as plan `{outcome.plan.plan_id}` (ledger: {', '.join(entries)})"
        where["plan_id"] = outcome.plan.plan_id
    else:
        assert outcome.rejection is not None
        place = f"`{log.path}`" if isinstance(log, JsonlRejectionLog) else "the rejection log"
        stored = f"rejection record #{outcome.rejection.seq} written to {place}"
        where["rejection_seq"] = outcome.rejection.seq
        if isinstance(log, JsonlRejectionLog):
            where["rejection_log"] = str(log.path)
    return _report(args, bundle, outcome.result, stored, where)


def _report(
    args: argparse.Namespace,
    bundle: PolicyBundle,
    result: ProposalResult,
    stored: str,
    where: dict[str, Any],
) -> int:
    if args.format == "json":
        data = result.as_dict()
        data["stored"] = where or None
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(proposal_text(bundle, result, stored))
    return EXIT_OK if result.drafted else EXIT_DENY


def _simulation_line(simulation: Any) -> list[str]:
    if not isinstance(simulation, dict):
        return []
    days = f"{simulation.get('horizon_days', 0):g}"
    lines = [f"  dry run ({days} days, every action succeeding):"]
    if not simulation.get("activated"):
        why = (
            simulation.get("approval_refused")
            or simulation.get("activation_rejected")
            or "not within the horizon"
        )
        lines.append(f"    not activated: {why}")
    for step in simulation.get("steps", []):
        state = str(step.get("status", "?")).lower()
        if step.get("awaiting_approval"):
            state = "waits for a person's approval"
        elif step.get("skip_reason"):
            state = f"skipped: {step['skip_reason']}"
        lines.append(f"    {step.get('action_type', '?'):<26} {state}")
    end = simulation.get("completion_reason") or "still running"
    lines.append(f"    plan {simulation.get('status', '?')} ({end}) at the end of the horizon")
    return lines


def proposal_text(bundle: PolicyBundle, result: ProposalResult, stored: str) -> str:
    """The proposal for people: the DRAFT, the gate's view, the dry run, the audit digests."""
    audit = result.audit
    model = f", model `{audit.model_id}`" if audit.model_id else ""
    head = f"proposal `{audit.proposal_id}` by `{audit.proposer}`{model}"
    lines: list[str] = []
    plan = result.plan
    if result.drafted and plan is not None:
        lines.append(f"{head}: DRAFT for account `{plan.account_id}` (tenant `{plan.tenant_id}`)")
        lines.append(
            f"  plan `{plan.plan_id}`: {plan.plan_type} v{plan.plan_type_version}, "
            f"owner `{plan.owner}`, expires {plan.expires_at.isoformat()}"
        )
        lines.append(f"  objective: {plan.objective}")
        lines.append(f"  rationale: {audit.rationale or '(none)'}")
        lines.append(f"  risk: {bundle.plan_risk(plan) or 'unknown'}")
        lines.append("  steps:")
        ptype = bundle.plan_type(plan.plan_type)
        for step in plan.steps:
            spec = ptype.steps.get(step.action_type) if ptype else None
            tags = ["human touch"] if step.human_touch else []
            tags += [f"{k}={json.dumps(v)}" for k, v in step.parameters.items()]
            risk = spec.risk if spec else "?"
            lines.append(f"    {step.action_type:<26} {risk:<7} {'  '.join(tags)}".rstrip())
        decision = result.decision
        if decision is not None:
            verdict = "can activate" if decision.can_activate else "would deny activation"
            lines.append(f"  gate, once approved: {verdict}")
            for reason in decision.reasons:
                lines.append(f"    {reason.location or 'plan'}: {reason.code}: {reason.message}")
        lines.extend(_simulation_line(result.simulation))
        lines.append("  approval: a person must approve this DRAFT; nothing runs until then")
    else:
        lines.append(f"{head}: rejected for account `{audit.account_id}` (no plan proposed)")
        for reason in result.reasons:
            lines.append(f"  {reason.location or 'proposal'}: {reason.code}: {reason.message}")
        if audit.rationale:
            lines.append(f"  rationale: {audit.rationale}")
    lines.append(
        f"  audit: input {audit.input_digest}, output {audit.output_digest or '(none)'}, "
        f"bundle {audit.bundle_digest}"
    )
    lines.append(f"  {stored}")
    return "\n".join(lines) + "\n"
