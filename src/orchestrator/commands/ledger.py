"""``plan-orchestrator ledger show|verify``: read and check plan ledgers.

``verify`` exits 1 when any ledger fails its hash chain (an entry was edited,
deleted or reordered) and names the plan and seq of every problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.commands.options import add_store_option, opened_store
from orchestrator.errors import CorruptRecord, NotFound
from orchestrator.ledger import ChainProblem, LedgerEntry, verify_chain
from orchestrator.ports import ManagedStore
from orchestrator.records import PlanRef

__all__ = ["format_entries", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ledger`` verb and its ``show`` and ``verify`` subcommands."""
    parser = subparsers.add_parser(
        "ledger", help="show or verify plan ledgers", description="Read and check plan ledgers."
    )
    verbs = parser.add_subparsers(dest="ledger_verb", metavar="{show,verify}", required=True)

    show = verbs.add_parser(
        "show", help="print a plan's history", description="Print a plan's ledger, oldest first."
    )
    show.add_argument("plan_id", metavar="PLAN_ID")
    show.add_argument("--tenant", help="tenant owning the plan (needed if several do)")
    show.add_argument("--format", choices=("text", "json"), default="text")
    add_store_option(show)
    show.set_defaults(run=run_show)

    verify = verbs.add_parser(
        "verify",
        help="check ledger hash chains (exit 1 on tampering)",
        description=(
            "Check every plan's ledger (or one plan's) for edited, deleted or reordered "
            "entries. Exit status 1 names each problem by plan and seq."
        ),
    )
    verify.add_argument("--plan", metavar="ID", help="verify only this plan")
    verify.add_argument("--tenant", help="verify only this tenant's plans")
    verify.add_argument("--format", choices=("text", "json"), default="text")
    add_store_option(verify)
    verify.set_defaults(run=run_verify)


def _resolve(store: ManagedStore, plan_id: str, tenant: str | None) -> PlanRef:
    refs = [ref for ref in store.find_plan(plan_id) if tenant is None or ref.tenant_id == tenant]
    if not refs:
        raise NotFound(tenant or "any", plan_id)
    if len(refs) > 1:
        tenants = ", ".join(f"`{ref.tenant_id}`" for ref in refs)
        raise _Ambiguous(f"plan `{plan_id}` exists in tenants {tenants}: pass --tenant")
    return refs[0]


class _Ambiguous(Exception):
    """More than one tenant has a plan with the id."""


def run_show(args: argparse.Namespace) -> int:
    """Print one plan's ledger."""
    with opened_store(args.store) as store:
        try:
            ref = _resolve(store, args.plan_id, args.tenant)
        except _Ambiguous as exc:
            print(f"plan-orchestrator: error: {exc}", file=sys.stderr)
            return 2
        entries = store.ledger(ref.tenant_id, ref.plan_id)
    if args.format == "json":
        print(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
    else:
        print(format_entries(ref, entries), end="")
    return 0


def format_entries(ref: PlanRef, entries: list[LedgerEntry]) -> str:
    """A plan's ledger as readable text, one block per entry."""
    lines = [f"plan `{ref.plan_id}` (tenant `{ref.tenant_id}`): {len(entries)} ledger entries"]
    for entry in entries:
        when = entry.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(
            f"{entry.seq:>4}  {when}  {entry.event.value:<20} by {entry.actor}"
            f"  (plan v{entry.plan_version})"
        )
        if entry.reason:
            lines.append(f"      reason: {entry.reason}")
        if entry.step_id is not None:
            attempt = f" attempt {entry.attempt}" if entry.attempt is not None else ""
            lines.append(f"      step: {entry.step_id}{attempt}")
        if entry.bundle_digest or entry.document_versions:
            documents = ", ".join(f"{k} v{v}" for k, v in sorted(entry.document_versions.items()))
            policy = ", ".join(part for part in (entry.bundle_digest, documents) if part)
            lines.append(f"      policy: {policy}")
        if entry.evidence:
            evidence = json.dumps(entry.evidence, sort_keys=True, separators=(", ", ": "))
            lines.append(f"      evidence: {evidence}")
    return "\n".join(lines) + "\n"


def run_verify(args: argparse.Namespace) -> int:
    """Verify ledgers; 1 if any problem was found. JSON output also lists every head."""
    problems: list[ChainProblem] = []
    heads: dict[str, dict[str, Any]] = {}
    checked = entries_checked = 0
    with opened_store(args.store) as store:
        if args.plan:
            try:
                refs = [_resolve(store, args.plan, args.tenant)]
            except _Ambiguous:
                refs = store.find_plan(args.plan)
        else:
            refs = [r for r in store.scan_plans() if args.tenant in (None, r.tenant_id)]
        for ref in refs:
            checked += 1
            try:
                head, entries = store.ledger_snapshot(ref.tenant_id, ref.plan_id)
            except CorruptRecord as exc:
                problems.append(ChainProblem(ref.tenant_id, ref.plan_id, None, exc.message))
                continue
            entries_checked += len(entries)
            heads[f"{ref.tenant_id}/{ref.plan_id}"] = {"seq": head.seq, "hash": head.hash}
            problems += verify_chain(
                entries, head=head, tenant_id=ref.tenant_id, plan_id=ref.plan_id
            )
    if args.format == "json":
        report: dict[str, Any] = {
            "plans": checked,
            "entries": entries_checked,
            "problems": [
                {"tenant_id": p.tenant_id, "plan_id": p.plan_id, "seq": p.seq, "message": p.message}
                for p in problems
            ],
            # compare with a copy kept elsewhere: a chain cannot prove its own tail
            "heads": heads,
        }
        print(json.dumps(report, indent=2))
    else:
        for problem in problems:
            print(str(problem))
        verdict = "FAILED" if problems else "ok"
        print(
            f"ledger verify {verdict}: {checked} plans, {entries_checked} entries, "
            f"{len(problems)} problems"
        )
    return 1 if problems else 0
