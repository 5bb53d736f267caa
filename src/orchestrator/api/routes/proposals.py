"""``/v1/proposals``: propose a DRAFT plan for an account; list rejected proposals.

``POST /v1/proposals`` asks a proposer (``rules`` by default; ``bedrock`` when
the server has a model configured) for a plan for one of the caller's
tenant's accounts. The account and its signals are the server's facts (the
same the gate reads); the body may add history and goals. The answer is
reviewed (validated, bounded, forced to DRAFT, gated as if approved, dry-run)
and then either stored as a DRAFT -- ``201`` with ``Location`` -- or recorded
as a rejection -- ``200`` with ``outcome: rejected`` and the reasons. Nothing
is ever approved or activated here; a person approves the DRAFT as usual.

``GET /v1/proposals/rejected`` lists the tenant's rejection records.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.responses import Response

from orchestrator.api.auth import Caller
from orchestrator.api.context import ApiContext
from orchestrator.api.deps import (
    CallerDep,
    ContextDep,
    IdempotencyKey,
    Precondition,
    json_response,
    run_mutation,
)
from orchestrator.api.models import IDENT_PATTERN, GateView, PlanView, ReasonView
from orchestrator.api.openapi import problems
from orchestrator.api.problems import ApiProblem
from orchestrator.api.views import etag, gate_view, plan_view
from orchestrator.proposal_log import RejectionLog, rejection_log_for
from orchestrator.proposals import ProposalService
from planpolicy.proposal import ProposalInputError, ProposalRequest, Proposer

__all__ = ["NewProposal", "ProposalView", "RejectionPage", "router"]

router = APIRouter(prefix="/v1", tags=["proposals"])

_Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENT_PATTERN)]


class NewProposal(BaseModel):
    """What to propose a plan for."""

    model_config = ConfigDict(extra="forbid", strict=True)

    account_id: _Ident = Field(description="The account (of the caller's tenant)")
    proposer: Literal["rules", "bedrock"] = Field(
        default="rules",
        description="`rules`: the plan types' proposal rules (deterministic); `bedrock`: an "
        "LLM, when the server has a model configured",
    )
    owner: _Ident | None = Field(
        default=None, description="User accountable for the plan (default: the caller)"
    )
    history: list[JsonValue] = Field(
        default_factory=list, max_length=100, description="Past events of the account (data)"
    )
    goals: list[JsonValue] = Field(
        default_factory=list,
        max_length=20,
        description="The tenant's goals (data); goals naming a `plan_type` limit the plan types",
    )


class ProposalView(BaseModel):
    """A reviewed proposal: the stored DRAFT, or the rejection and its reasons."""

    outcome: Literal["drafted", "rejected"]
    proposal: dict[str, Any] = Field(
        description="The audit record: proposer, model id, input and output digests, "
        "rationale, bundle digest"
    )
    plan: PlanView | None = Field(default=None, description="The stored DRAFT")
    reasons: list[ReasonView] = Field(
        default_factory=list, description="Why the proposal was rejected"
    )
    decision: GateView | None = Field(
        default=None, description="The gate's decision on the DRAFT as if it were approved"
    )
    simulation: dict[str, Any] | None = Field(
        default=None, description="Summary of a short dry run of the plan, once approved"
    )
    rejection_seq: int | None = Field(
        default=None, description="Position of the rejection record in the rejection log"
    )


class RejectionPage(BaseModel):
    """The tenant's newest rejection records, oldest first."""

    items: list[dict[str, Any]]


def _rejections(request: Request, context: ApiContext) -> RejectionLog:
    state = request.app.state
    log: RejectionLog | None = getattr(state, "proposal_rejections", None)
    if log is None:
        log = rejection_log_for(context.settings.store_url)
        state.proposal_rejections = log
    return log


def _proposer(request: Request, name: str) -> Proposer:
    if name == "rules":
        from planpolicy.proposers.rules import RulesProposer

        return RulesProposer()
    from planpolicy.proposers.bedrock import MODEL_ID_ENV, BedrockProposer

    state = request.app.state
    proposer: Proposer | None = getattr(state, "bedrock_proposer", None)
    if proposer is None:
        if not os.environ.get(MODEL_ID_ENV):
            raise ApiProblem(
                "validation-error",
                "the `bedrock` proposer is not enabled on this server",
                {
                    "errors": [
                        {
                            "location": "body",
                            "field": "proposer",
                            "pointer": "#/proposer",
                            "detail": f"set {MODEL_ID_ENV} on the server to enable it",
                            "code": "proposer_not_enabled",
                        }
                    ]
                },
            )
        proposer = BedrockProposer()
        state.bedrock_proposer = proposer
    return proposer


def _request(context: ApiContext, caller: Caller, body: NewProposal) -> ProposalRequest:
    now = context.clock.now()
    account, signals = context.accounts.snapshot(caller.tenant_id, body.account_id, now)
    raw = {
        "tenant_id": caller.tenant_id,
        "owner": body.owner or caller.user_id,
        "now": now,
        "account": {**account, "account_id": body.account_id},
        "signals": dict(signals),
        "history": body.history,
        "goals": body.goals,
    }
    try:
        return ProposalRequest.from_mapping(raw, requested_by=caller.user_id)
    except ProposalInputError as exc:
        errors = [
            {
                "location": "body",
                "field": ".".join(str(p) for p in path) or "body",
                "pointer": "#/" + "/".join(str(p) for p in path),
                "detail": message,
                "code": "invalid_proposal_input",
            }
            for path, message in exc.problems
        ]
        raise ApiProblem(
            "validation-error", "the account data cannot be proposed on", {"errors": errors}
        ) from None


@router.post(
    "/proposals",
    operation_id="createProposal",
    summary="Propose a DRAFT plan for an account (rules or Bedrock)",
    status_code=201,
    response_model=ProposalView,
    responses={
        200: {
            "description": "Rejected: nothing but a rejection record was stored",
            "model": ProposalView,
        },
        **problems(401, 409, 422),
    },
)
def create_proposal(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    body: NewProposal,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A DRAFT for a person to approve (201), or the rejection and its reasons (200)."""

    def command() -> Response:
        proposal_request = _request(context, caller, body)
        proposer = _proposer(request, body.proposer)
        service = ProposalService(context.service, _rejections(request, context))
        outcome = service.propose(proposal_request, proposer)
        result = outcome.result
        view = ProposalView(
            outcome=result.outcome,
            proposal=result.audit.as_dict(),
            reasons=[ReasonView(**r.as_dict()) for r in result.reasons],
            decision=gate_view(result.decision) if result.decision else None,
            simulation=dict(result.simulation) if result.simulation is not None else None,
            rejection_seq=outcome.rejection.seq if outcome.rejection else None,
        )
        if outcome.plan is None:
            return json_response(view)
        entries = context.store.ledger(caller.tenant_id, outcome.plan.plan_id)
        view.plan = plan_view(context.runtime, outcome.plan, caller, entries)
        return json_response(
            view,
            status=201,
            headers={
                "Location": f"/v1/plans/{outcome.plan.plan_id}",
                "ETag": etag(outcome.plan.version),
            },
        )

    return run_mutation(
        request, context, caller, idempotency_key, body, Precondition(None), command
    )


@router.get(
    "/proposals/rejected",
    operation_id="listRejectedProposals",
    summary="The caller's tenant's rejected proposals",
    response_model=RejectionPage,
    responses=problems(401, 422),
)
def list_rejected(
    request: Request,
    context: ContextDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many, newest")] = 50,
) -> Response:
    """Rejection records (event `proposal_rejected`), oldest first."""
    records = _rejections(request, context).records(caller.tenant_id, limit=limit)
    return json_response(RejectionPage(items=[r.model_dump(mode="json") for r in records]))
