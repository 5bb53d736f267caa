"""The plan lifecycle machine, built from a Lifecycle document with ``transitions``.

This is the only module that imports ``transitions``, and it is fenced: no
automatic ``to_<state>`` transitions, invalid triggers raise, and no string
from YAML is ever resolved into code (callbacks are not used at all; guards
are checked here against decisions the caller passes in).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from transitions import Machine, MachineError

from planpolicy.authority import Actor, AuthorityDecision, check_authority
from planpolicy.facts import Facts
from planpolicy.gate import Decision, Gate
from planpolicy.model import CompiledLifecycle, PolicyBundle, TransitionSpec
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = [
    "GuardDenied",
    "InvalidTransition",
    "LifecycleError",
    "LifecycleMachine",
    "TransitionOutcome",
    "decide_transition",
    "machine_for",
]


class LifecycleError(Exception):
    """Base of lifecycle errors; never worth retrying unchanged."""

    retryable = False


class InvalidTransition(LifecycleError):
    """The trigger cannot fire from the plan's current state."""

    def __init__(self, state: str, trigger: str, allowed: list[str]) -> None:
        shown = ", ".join(f"`{t}`" for t in allowed) or "none"
        super().__init__(f"cannot `{trigger}` a plan in state `{state}` (allowed: {shown})")
        self.state = state
        self.trigger = trigger
        self.allowed = allowed


class GuardDenied(LifecycleError):
    """A guard named in the Lifecycle document refused the transition."""

    def __init__(
        self, trigger: str, guard: str, reasons: tuple[Reason, ...], detail: str | None = None
    ) -> None:
        detail = detail or "; ".join(r.message for r in reasons) or "no decision was supplied"
        super().__init__(f"`{trigger}` refused by the `{guard}` guard: {detail}")
        self.trigger = trigger
        self.guard = guard
        self.reasons = reasons


class _Token:
    """A throwaway model object: ``transitions`` sets ``state`` on it."""

    state: str


@dataclass(frozen=True)
class _Fired:
    spec: TransitionSpec
    dest: str


class LifecycleMachine:
    """Validates and applies triggers for one compiled lifecycle. Thread-safe.

    The ``transitions`` machine is built once, and every transition the
    document declares is run through it once, here: :meth:`fire` then looks
    the destination up (a machine without callbacks or conditions always
    gives the same state for the same source and trigger) instead of attaching
    a model to the machine on every call.
    """

    def __init__(self, lifecycle: CompiledLifecycle) -> None:
        self.lifecycle = lifecycle
        self._machine = Machine(
            model=None,
            states=list(lifecycle.states),
            initial=lifecycle.initial,
            transitions=[
                {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest}
                for t in lifecycle.transitions
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
            model_attribute="state",
        )
        # (state, trigger) -> (the document's transition, the machine's destination);
        # the destination is None if the machine refuses what the document allows
        self._table: dict[tuple[str, str], tuple[TransitionSpec, str | None]] = {}
        for spec in lifecycle.transitions:
            for source in spec.sources:
                key = (source, spec.trigger)
                if key not in self._table:
                    found = lifecycle.transition(spec.trigger, source)
                    assert found is not None
                    self._table[key] = (found, self._run(source, spec.trigger))

    def _run(self, state: str, trigger: str) -> str | None:
        """The state the ``transitions`` machine reaches from ``state`` by ``trigger``."""
        token = _Token()
        self._machine.add_model(token, initial=state)
        try:
            token.trigger(trigger)  # type: ignore[attr-defined]
        except MachineError:
            return None
        finally:
            self._machine.remove_model(token)
        return token.state

    def allowed_triggers(self, state: str) -> list[str]:
        """Triggers that may fire from ``state``, in document order."""
        return list(
            dict.fromkeys(t.trigger for t in self.lifecycle.transitions if state in t.sources)
        )

    def guards(self, state: str, trigger: str) -> frozenset[str]:
        """Guards of the transition ``trigger`` from ``state`` (raises if invalid)."""
        return self._entry(state, trigger)[0].guards

    def _entry(self, state: str, trigger: str) -> tuple[TransitionSpec, str | None]:
        entry = self._table.get((state, trigger))
        if entry is None:
            raise InvalidTransition(state, trigger, self.allowed_triggers(state))
        return entry

    def fire(
        self,
        state: str,
        trigger: str,
        *,
        gate: Decision | None = None,
        authority: AuthorityDecision | None = None,
    ) -> str:
        """The state after ``trigger`` fires from ``state``.

        Raises :class:`InvalidTransition` when the trigger is not allowed from
        ``state`` and :class:`GuardDenied` when a guard named by the document
        is not satisfied by the decision passed in (a missing decision denies).
        """
        spec, dest = self._entry(state, trigger)
        if "authority" in spec.guards:
            if authority is not None and authority.action != trigger:
                detail = f"the authority decision is for `{authority.action}`, not `{trigger}`"
                raise GuardDenied(trigger, "authority", (), detail)
            if authority is None or not authority.allowed:
                raise GuardDenied(trigger, "authority", authority.reasons if authority else ())
        if "gate" in spec.guards and (gate is None or not gate.can_activate):
            raise GuardDenied(trigger, "gate", gate.reasons if gate else ())
        if dest is None:  # defensive: the document's table agrees with the machine
            raise InvalidTransition(state, trigger, self.allowed_triggers(state))
        return dest

    def is_terminal(self, state: str) -> bool:
        return state in self.lifecycle.terminal


@lru_cache(maxsize=64)
def _machine(lifecycle: CompiledLifecycle) -> LifecycleMachine:
    return LifecycleMachine(lifecycle)


def machine_for(bundle: PolicyBundle, plan_type: str) -> LifecycleMachine | None:
    """The (cached) machine of a plan type's lifecycle; ``None`` for an unknown plan type."""
    ptype = bundle.plan_type(plan_type)
    return _machine(bundle.lifecycle_of(ptype)) if ptype is not None else None


@dataclass(frozen=True)
class TransitionOutcome:
    """What happened when a trigger was tried on a plan (a value, for tests and tools).

    ``error`` is ``None`` when the transition is allowed, else ``invalid_transition``
    or ``guard_denied`` (then ``guard`` names the refusing guard).
    """

    trigger: str
    source: str
    dest: str | None
    error: str | None = None
    guard: str | None = None
    message: str = ""
    reasons: tuple[Reason, ...] = ()
    authority: AuthorityDecision | None = None
    gate: Decision | None = None

    @property
    def allowed(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "from": self.source,
            "to": self.dest,
            "allowed": self.allowed,
            "error": self.error,
            "guard": self.guard,
            "message": self.message,
            "reasons": [r.as_dict() for r in self.reasons],
        }


def decide_transition(
    bundle: PolicyBundle,
    plan: RevenuePlanV1,
    trigger: str,
    *,
    actor: Actor | None = None,
    facts: Facts | None = None,
    gate: Gate | None = None,
) -> TransitionOutcome:
    """Try ``trigger`` on ``plan`` without changing it: the guards the lifecycle names are
    decided here (authority for ``actor``, the gate over ``facts``); a guard whose input is
    missing refuses. Raises ``KeyError`` for a plan type the bundle does not have.
    """
    machine = machine_for(bundle, plan.plan_type)
    if machine is None:
        raise KeyError(plan.plan_type)
    state = plan.status
    try:
        guards = machine.guards(state, trigger)
    except InvalidTransition as exc:
        return TransitionOutcome(trigger, state, None, "invalid_transition", None, str(exc))
    authority = None
    if "authority" in guards and actor is not None:
        authority = check_authority(bundle, plan, trigger, actor)
    decision = None
    if "gate" in guards and facts is not None:
        decision = (gate or Gate(bundle)).evaluate(plan, facts)
    try:
        dest = machine.fire(state, trigger, gate=decision, authority=authority)
    except GuardDenied as exc:
        return TransitionOutcome(
            trigger,
            state,
            None,
            "guard_denied",
            exc.guard,
            str(exc),
            exc.reasons,
            authority,
            decision,
        )
    return TransitionOutcome(trigger, state, dest, authority=authority, gate=decision)
