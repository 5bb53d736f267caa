"""Plans and facts for engine tests, against the bundled RENEWAL_DEFENSE policy.

``eligible_plan()`` and ``acme_facts()`` together pass every gate check; each
test changes one thing and says what it expects.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from tests.engine.conftest import REPO

from planpolicy.compiler import load_bundle
from planpolicy.facts import ActivePlanRef, Facts
from planpolicy.model import PolicyBundle
from planpolicy.plan import PlanStep, RevenuePlanV1

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RENEWAL = datetime(2025, 5, 15, tzinfo=UTC)
PLAN_TYPE_FILE = "plan_types/renewal_defense.yaml"


@cache
def bundle() -> PolicyBundle:
    """The bundled policies, compiled once per test session."""
    return load_bundle([REPO / "policies", REPO / "plan_types"])


def step(action_type: str, **fields: Any) -> PlanStep:
    return PlanStep(action_type=action_type, **fields)


def all_steps() -> list[PlanStep]:
    return [
        step("PREP_RENEWAL_BRIEF", parameters={"audience": "Acme sponsor"}),
        step("REQUEST_RENEWAL_MEETING"),
        step("ESCALATE_SUPPORT_RISK", human_touch=True),
    ]


def eligible_plan(*, steps: Sequence[PlanStep] | None = None, **fields: Any) -> RevenuePlanV1:
    """An APPROVED, HIGH-risk RENEWAL_DEFENSE plan for `acme` that may activate at NOW."""
    values: dict[str, Any] = {
        "plan_id": f"rd-{uuid.uuid4()}",
        "tenant_id": "northwind",
        "account_id": "acme",
        "plan_type": "RENEWAL_DEFENSE",
        "plan_type_version": 1,
        "status": "APPROVED",
        "owner": "alice",
        "created_by": "paul",
        "created_at": NOW - timedelta(days=2),
        "updated_at": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=90),
        "steps": list(steps) if steps is not None else all_steps(),
    }
    values.update(fields)
    return RevenuePlanV1(**values)


def acme_facts(
    *,
    now: datetime = NOW,
    account: dict[str, Any] | None = None,
    signals: dict[str, Any] | None = None,
    active: Sequence[ActivePlanRef] = (),
) -> Facts:
    """Acme at NOW: renewal AT_RISK on 2025-05-15, two open P1 tickets."""
    base_account: dict[str, Any] = {
        "account_id": "acme",
        "arr": 480000.0,
        "renewal_date": RENEWAL,
        "renewal": {"status": "AT_RISK", "amount": 480000.0},
    }
    base_signals: dict[str, Any] = {"open_p1_tickets": 2, "open_tickets": 9}
    return Facts(
        now,
        base_account if account is None else account,
        base_signals if signals is None else signals,
        tuple(active),
    )


def active_ref(plan_id: str = "rd-other", **fields: str) -> ActivePlanRef:
    values = {
        "tenant_id": "northwind",
        "account_id": "acme",
        "plan_type": "RENEWAL_DEFENSE",
        "status": "ACTIVE",
    }
    values.update(fields)
    return ActivePlanRef(plan_id=plan_id, **values)


def line_of(rel: str, needle: str) -> int:
    """1-based line of the first line of ``REPO/rel`` containing ``needle``."""
    for number, line in enumerate((REPO / rel).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {rel}")
