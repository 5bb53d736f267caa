"""The compiled policy as the service uses it: gate, evaluator, lifecycle, ledger stamps.

One :class:`PolicyRuntime` per process, built once from a compiled bundle.
Everything that decides goes through :mod:`planpolicy`'s public API, so the
API, the CLI, the scheduler and the simulation cannot decide differently.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.accounts import AccountFacts
from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.ports import PlanStore
from planpolicy import (
    ActivePlanRef,
    Facts,
    Gate,
    LifecycleMachine,
    PolicyBundle,
    RevenuePlanV1,
    StateEvaluator,
    StepPlanner,
)

__all__ = ["PolicyRuntime", "jsonable"]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """Plain JSON values for ledger evidence."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:  # the common case first; a str key is kept as it is
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _json_data(value: Any) -> tuple[Any, bool]:
    """``jsonable(value)``, and whether that is plain (see :func:`_plain`), in one walk.

    Dicts and lists are walked here, scalars of the exact JSON types taken as
    they are; anything else goes through :func:`jsonable` and :func:`_plain`.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value, True
    if kind is dict:
        out: dict[str, Any] = {}
        plain = True
        for key, item in value.items():
            name = key if type(key) is str else str(key)  # as jsonable names it
            if name is not key:
                plain = plain and type(name) is str
            if type(item) in _SCALARS:
                out[name] = item
            else:
                out[name], ok = _json_data(item)
                plain = plain and ok
        return out, plain
    if kind is list:
        items: list[Any] = []
        plain = True
        for item in value:
            if type(item) in _SCALARS:
                items.append(item)
            else:
                converted, ok = _json_data(item)
                items.append(converted)
                plain = plain and ok
        return items, plain
    data = jsonable(value)
    return data, _plain(data)


def _plain(value: Any) -> bool:
    """True when ``value`` holds only dicts with ``str`` keys, lists and JSON scalars (exact types)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def _short_text(value: object, shortest: int, longest: int | None) -> bool:
    """An exact ``str`` of a length within bounds that validates as it is (ASCII: no surrogate)."""
    return (
        type(value) is str
        and value.isascii()
        and len(value) >= shortest
        and (longest is None or len(value) <= longest)
    )


_DRAFT_FIELDS: frozenset[str] = frozenset(LedgerDraft.model_fields)
_set_attr = object.__setattr__


def _draft_of(
    now: object, actor: object, event: object, reason: object, step_id: object, attempt: object
) -> tuple[dict[str, Any], set[str]] | None:
    """The values ``LedgerDraft`` validation makes of these, when that is plain to see.

    Only for values of exactly the declared types within the declared bounds
    (an aware ``datetime``, ASCII text of the allowed lengths, a
    ``LedgerEvent``, a UUID or None, a positive ``int`` or None): validation
    keeps them as they are and turns the time into UTC. ``None`` for anything
    else, which then goes through validation. The caller adds the stamps and
    the evidence (plain JSON data).
    """
    if type(now) is not datetime or now.utcoffset() is None:
        return None
    if not (_short_text(actor, 1, 256) and _short_text(reason, 0, 4000)):
        return None
    if type(event) is not LedgerEvent:
        return None
    if step_id is not None and type(step_id) is not uuid.UUID:
        return None
    if attempt is not None and (type(attempt) is not int or attempt < 1):
        return None
    values: dict[str, Any] = {
        "time": now.astimezone(UTC),  # the model's validator
        "actor": actor,
        "event": event,
        "reason": reason,
        "bundle_digest": None,
        "document_versions": None,
        "step_id": step_id,
        "attempt": attempt,
        "evidence": None,
    }
    return values, set(_DRAFT_FIELDS)  # every field is given


def _built_draft(values: dict[str, Any], fields_set: set[str]) -> LedgerDraft:
    """A ``LedgerDraft`` holding ``values`` (as validation makes them), every field given."""
    draft = LedgerDraft.__new__(LedgerDraft)
    _set_attr(draft, "__dict__", values)
    _set_attr(draft, "__pydantic_fields_set__", fields_set)
    _set_attr(draft, "__pydantic_extra__", None)
    _set_attr(draft, "__pydantic_private__", None)
    return draft


class PolicyRuntime:
    """Gate, evaluator and lifecycle machines of one bundle, plus ledger stamping."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
        self.gate = Gate(bundle)
        self.evaluator = StateEvaluator(bundle)
        self.steps = StepPlanner(bundle)
        self._machines = {name: LifecycleMachine(lc) for name, lc in bundle.lifecycles.items()}
        self._versions = bundle.versions()
        self._last_facts: Facts | None = None
        # the stamps every draft carries are valid as they are (see _draft_of)
        self._stamps_ok = _short_text(bundle.digest, 0, 256) and all(
            _short_text(k, 0, None) and type(v) is int for k, v in self._versions.items()
        )

    def machine(self, plan: RevenuePlanV1) -> LifecycleMachine:
        """The lifecycle machine of the plan's type (the first lifecycle for unknown types)."""
        ptype = self.bundle.plan_type(plan.plan_type)
        if ptype is not None:
            return self._machines[ptype.lifecycle]
        return next(iter(self._machines.values()))

    def draft(
        self,
        now: datetime,
        actor: str,
        event: LedgerEvent,
        reason: str = "",
        *,
        step_id: uuid.UUID | None = None,
        attempt: int | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> LedgerDraft:
        """A ledger entry stamped with the bundle digest and document versions."""
        data, plain = _json_data(evidence or {})
        if plain and self._stamps_ok:
            quick = _draft_of(now, actor, event, reason[:4000], step_id, attempt)
            if quick is not None:
                values, fields_set = quick
                values["bundle_digest"] = self.bundle.digest
                values["document_versions"] = dict(self._versions)  # what validation makes
                values["evidence"] = data
                return _built_draft(values, fields_set)
        draft = LedgerDraft(
            time=now,
            actor=actor,
            event=event,
            reason=reason[:4000],
            bundle_digest=self.bundle.digest,
            document_versions=self._versions,  # validation copies it
            step_id=step_id,
            attempt=attempt,
            evidence={} if plain else data,
        )
        if plain:
            # Plain JSON values of exactly these types validate to an equal copy of
            # themselves, and `data` is already a fresh copy: skip that validation.
            draft.__dict__["evidence"] = data
        return draft

    def facts(
        self,
        store: PlanStore,
        accounts: AccountFacts,
        plan: RevenuePlanV1,
        now: datetime,
        *,
        active_plans: bool = True,
    ) -> Facts:
        """What the gate and evaluator see for ``plan`` at ``now``, active plans from the store.

        Only the gate's conflict check reads the active plans (CEL rules never see
        them): ``active_plans=False`` skips that store read for the evaluator and
        the step rules.
        """
        account, signals = accounts.snapshot(plan.tenant_id, plan.account_id, now)
        holder = (
            store.active_plan_for(plan.tenant_id, plan.account_id, plan.plan_type)
            if active_plans
            else None
        )
        active: tuple[ActivePlanRef, ...] = ()
        if holder is not None and holder != plan.plan_id:
            active = (ActivePlanRef(holder, plan.tenant_id, plan.account_id, plan.plan_type),)
        last = self._last_facts
        if (
            last is not None
            and last.now is now
            and last.account is account
            and last.signals is signals
            and last.active_plans == active
        ):
            # The very same snapshot at the very same moment (a plan's next action in
            # one turn, or another plan of the account): the same facts, whose CEL
            # conversion is already made.
            return last
        facts = Facts(now=now, account=account, signals=signals, active_plans=active)
        self._last_facts = facts if facts.now is now else None
        return facts
