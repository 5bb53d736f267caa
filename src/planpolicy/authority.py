"""Authority: may this actor perform this action on this plan?

Decided from the AuthorityPolicy grants for the plan's risk, the owner's
rights and the self-approval rule. A decision is a value; nothing is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from planpolicy.model import PolicyBundle
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = ["APPROVE", "APPROVE_STEP", "Actor", "AuthorityDecision", "check_authority"]

APPROVE = "approve"
APPROVE_STEP = "approve_step"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user id, their roles, and whether they are a person."""

    user_id: str
    roles: frozenset[str] = frozenset()
    human: bool = True

    @classmethod
    def system(cls, name: str) -> Actor:
        """A non-human actor (orchestrator, proposer); it can never approve."""
        return cls(name, frozenset(), human=False)


@dataclass(frozen=True)
class AuthorityDecision:
    """Allowed or not, and why."""

    allowed: bool
    action: str
    actor: Actor
    plan_risk: str | None
    reasons: tuple[Reason, ...] = ()
    basis: str = ""


def check_authority(
    bundle: PolicyBundle, plan: RevenuePlanV1, action: str, actor: Actor
) -> AuthorityDecision:
    """Decide whether ``actor`` may perform ``action`` (a trigger or ``approve_step``) on ``plan``.

    Every applicable reason is reported: a non-person approving, a proposer
    approving their own plan (when the policy forbids it), and a role the
    AuthorityPolicy does not grant the action at the plan's risk. The owner's
    rights (``ownerMay``) stand in for a role grant, never for the other rules.
    """
    rules = bundle.authority
    risk = bundle.plan_risk(plan)
    ref = rules.ref
    reasons: list[Reason] = []
    if not actor.human and action in (APPROVE, APPROVE_STEP):
        reasons.append(
            Reason(
                "AUTHORITY_NOT_HUMAN",
                f"`{actor.user_id}` is not a person and cannot {action}",
                ref,
                details={"actor": actor.user_id},
            )
        )
    if action == APPROVE and actor.user_id == plan.created_by and not rules.proposer_may_approve:
        reasons.append(
            Reason(
                "AUTHORITY_SELF_APPROVAL",
                f"`{actor.user_id}` proposed this plan and may not approve it",
                ref,
                details={"actor": actor.user_id, "created_by": plan.created_by},
            )
        )
    basis, eligible = _basis(bundle, plan, action, actor, risk)
    if basis is None:
        wanted = ", ".join(f"`{r}`" for r in sorted(eligible)) or "no role"
        reasons.append(
            Reason(
                "AUTHORITY_ROLE_NOT_ALLOWED",
                f"`{actor.user_id}` may not {action} a plan of risk `{risk}`: requires {wanted}",
                ref,
                details={
                    "roles": sorted(actor.roles),
                    "allowed_roles": sorted(eligible),
                    "plan_risk": risk,
                },
            )
        )
    return AuthorityDecision(not reasons, action, actor, risk, tuple(reasons), basis or "")


def _basis(
    bundle: PolicyBundle, plan: RevenuePlanV1, action: str, actor: Actor, risk: str | None
) -> tuple[str | None, set[str]]:
    """Why the actor may act (``owner`` or a granted role) and the roles that would do."""
    rules = bundle.authority
    if actor.human and actor.user_id == plan.owner and action in rules.owner_may:
        return "owner", set()
    eligible: set[str] = set()
    for grant in rules.grants:
        if grant.action != action:
            continue
        covers = grant.max_risk is None or (
            risk is not None and bundle.risk.rank(risk) <= bundle.risk.rank(grant.max_risk)
        )
        if not covers:
            continue
        eligible |= grant.roles
        matched = sorted(grant.roles & actor.roles)
        if matched:
            return f"role `{matched[0]}`", eligible
    return None, eligible
