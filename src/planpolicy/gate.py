"""The Policy Gate: may this plan activate, and exactly why not.

``Gate(bundle).evaluate(plan, facts)`` returns a :class:`Decision`; it never
mutates anything and never raises for a plan or its context. Every check runs
and every reason is reported, not only the first. A rule that cannot be
evaluated denies with ``RULE_EVALUATION_ERROR`` naming the expression and the
missing value (fail closed).

With ``explain=True`` the ``trace`` of a decision lists each rule that was
evaluated, its inputs and its result, for ``planpolicy explain``; without it
the trace is empty and the inputs of a CEL rule are gathered only when the rule
denies, to keep the common path cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from planpolicy.cel import Activation
from planpolicy.facts import Facts, activation_for, context_data
from planpolicy.model import CompiledCondition, CompiledPlanType, PolicyBundle, RuleRef
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = ["ACTIVATABLE_STATES", "Decision", "Gate", "RuleTrace", "activatable_states"]

# The states the bundled lifecycle activates from (APPROVED -> ACTIVE, PAUSED -> ACTIVE).
# The gate derives the real set from each plan type's Lifecycle: see activatable_states.
ACTIVATABLE_STATES = frozenset({"APPROVED", "PAUSED"})

_MISSING = object()


@dataclass(frozen=True)
class RuleTrace:
    """One evaluated rule: what it looked at, what it found, and where it is written.

    ``raw_inputs`` are the values as the rule saw them; :attr:`inputs` is their
    JSON-friendly form, built only when someone reads it (explain, ledger, API).
    """

    rule: str
    kind: str
    result: str
    raw_inputs: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""
    ref: RuleRef | None = None

    @property
    def inputs(self) -> dict[str, Any]:
        """The inputs in JSON-friendly form (times as ISO-8601 text, durations in seconds)."""
        return {str(k): _jsonable(v) for k, v in self.raw_inputs.items()}

    def as_dict(self) -> dict[str, Any]:
        loc = self.ref.location if self.ref else None
        return {
            "rule": self.rule,
            "kind": self.kind,
            "result": self.result,
            "inputs": self.inputs,
            "detail": self.detail,
            "location": str(loc) if loc else None,
        }


@dataclass(frozen=True)
class Decision:
    """The gate's answer. ``can_activate`` is true exactly when there are no reasons."""

    can_activate: bool
    reasons: tuple[Reason, ...]
    plan_risk: str | None
    plan_id: str
    bundle_digest: str
    plan_type_version: int | None
    trace: tuple[RuleTrace, ...] = ()

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(r.code for r in self.reasons)

    def as_dict(self, *, explain: bool = False) -> dict[str, Any]:
        """JSON-friendly form (CLI, API, ledger evidence)."""
        out: dict[str, Any] = {
            "plan_id": self.plan_id,
            "can_activate": self.can_activate,
            "plan_risk": self.plan_risk,
            "bundle_digest": self.bundle_digest,
            "plan_type_version": self.plan_type_version,
            "reasons": [r.as_dict() for r in self.reasons],
        }
        if explain:
            out["trace"] = [t.as_dict() for t in self.trace]
        return out


def activatable_states(bundle: PolicyBundle, ptype: CompiledPlanType) -> frozenset[str]:
    """States from which the plan type's lifecycle enters a state through the `gate` guard."""
    lifecycle = bundle.lifecycle_of(ptype)
    return frozenset(s for t in lifecycle.transitions if "gate" in t.guards for s in t.sources)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return str(value)


def _path_value(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path``; ``_MISSING`` when a key is absent (``*`` stops the walk)."""
    current: Any = data
    for part in path:
        if part == "*":
            return current
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


class _Run:
    """The state of one evaluation: reasons and trace collected in order."""

    def __init__(self, gate: Gate, plan: RevenuePlanV1, facts: Facts, explain: bool) -> None:
        self.gate = gate
        self.plan = plan
        self.facts = facts
        self.explain = explain
        self.reasons: list[Reason] = []
        self.trace: list[RuleTrace] = []
        self._activation: Activation | None = None
        self._activation_error: str | None = None
        self._data: dict[str, Any] | None = None
        self._risk: object = _MISSING
        self.last_inputs: dict[str, Any] = {}

    def plan_risk(self) -> str | None:
        """The plan's derived risk, computed once per evaluation."""
        if self._risk is _MISSING:
            self._risk = self.gate.bundle.plan_risk(self.plan)
        return self._risk  # type: ignore[return-value]

    def activation(self) -> Activation | None:
        """The CEL activation, built once; ``None`` when the context cannot be converted."""
        if self._activation is None and self._activation_error is None:
            try:
                self._activation = activation_for(self.gate.bundle, self.plan, self.facts)
            except (TypeError, ValueError) as exc:
                self._activation_error = str(exc)
        return self._activation

    @property
    def activation_error(self) -> str | None:
        return self._activation_error

    def inputs_of(self, cond: CompiledCondition) -> tuple[dict[str, Any], list[str]]:
        """The values a condition reads, and the dotted paths that are missing or null."""
        if self._data is None:
            self._data = context_data(self.plan, self.facts)
        inputs: dict[str, Any] = {}
        missing: list[str] = []
        for path in sorted(cond.expr.paths):
            name = ".".join(path)
            value = _path_value(self._data, path)
            if value is _MISSING or value is None:
                missing.append(name)
                inputs[name] = None
            else:
                inputs[name] = _jsonable(value)
        if "now" in cond.expr.roots:
            inputs["now"] = self.facts.now.isoformat()
        return inputs, missing

    def deny(self, reason: Reason) -> None:
        self.reasons.append(reason)

    def note(
        self, rule: str, kind: str, result: str, ref: RuleRef | None = None, **inputs: Any
    ) -> None:
        if self.explain:
            self.trace.append(RuleTrace(rule, kind, result, inputs, "", ref))

    def traced(
        self, cond: CompiledCondition, kind: str, result: str, inputs: dict[str, Any], detail: str
    ) -> None:
        if self.explain:
            self.trace.append(RuleTrace(cond.id, kind, result, inputs, detail, cond.ref))

    def condition(
        self, cond: CompiledCondition, kind: str, step_id: uuid.UUID | None = None
    ) -> bool | None:
        """Evaluate a CEL condition; on an error, deny and return ``None``."""
        activation = self.activation()
        if activation is None:
            self.traced(cond, kind, "skipped", {}, "the context is invalid")
            return None
        result = cond.expr.evaluate(activation)
        ok = result.ok and isinstance(result.value, bool)
        inputs: dict[str, Any] = {}
        missing: list[str] = []
        if self.explain or not ok or result.value is False:
            inputs, missing = self.inputs_of(cond)
        self.last_inputs = inputs
        if not ok:
            error = result.error or f"expected a boolean, got `{type(result.value).__name__}`"
            if missing:
                error += "; missing value " + ", ".join(f"`{m}`" for m in missing)
            self.traced(cond, kind, "error", inputs, error)
            self.deny(
                Reason(
                    "RULE_EVALUATION_ERROR",
                    f"rule `{cond.id}` could not be evaluated: {error}",
                    cond.ref,
                    step_id,
                    {"expression": cond.expr.source.strip(), "error": error, "missing": missing},
                )
            )
            return None
        self.traced(cond, kind, "true" if result.value else "false", inputs, "")
        return bool(result.value)


@dataclass(frozen=True)
class _Prepared:
    """What the gate derives once per plan type."""

    activatable: frozenset[str]
    max_duration: timedelta
    max_duration_ref: RuleRef


class Gate:
    """The policy gate over one compiled bundle (prepare once, evaluate many)."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
        prepared = {}
        for name, ptype in bundle.plan_types.items():
            lifecycle = bundle.lifecycle_of(ptype)
            stricter = lifecycle.max_plan_duration < ptype.max_duration
            prepared[name] = _Prepared(
                activatable_states(bundle, ptype),
                lifecycle.max_plan_duration if stricter else ptype.max_duration,
                lifecycle.ref if stricter else ptype.ref,
            )
        self._prepared: Mapping[str, _Prepared] = MappingProxyType(prepared)

    def evaluate(self, plan: RevenuePlanV1, facts: Facts, *, explain: bool = False) -> Decision:
        """Decide whether ``plan`` may become ACTIVE given ``facts``. Never raises for plan data.

        With ``explain`` every traced CEL rule carries the values it read.
        """
        run = _Run(self, plan, facts, explain)
        ptype = self.bundle.plan_type(plan.plan_type)
        if ptype is None:
            run.note("plan_type", "plan_type", "deny", plan_type=plan.plan_type)
            run.deny(
                Reason(
                    "PLAN_TYPE_UNKNOWN",
                    f"plan type `{plan.plan_type}` is not in the policy bundle",
                    details={"known": sorted(self.bundle.plan_types)},
                )
            )
            return self._decision(run, None)
        prepared = self._prepared[ptype.name]
        self._check_status(run, ptype, prepared)
        self._check_version(run, ptype)
        self._check_steps(run, ptype)
        self._check_expiry(run, prepared)
        self._check_conflict(run)
        self._check_conditions(run, ptype)
        return self._decision(run, ptype)

    def _decision(self, run: _Run, ptype: CompiledPlanType | None) -> Decision:
        return Decision(
            can_activate=not run.reasons,
            reasons=tuple(run.reasons),
            plan_risk=run.plan_risk(),
            plan_id=run.plan.plan_id,
            bundle_digest=self.bundle.digest,
            plan_type_version=ptype.version if ptype else None,
            trace=tuple(run.trace),
        )

    def _check_status(self, run: _Run, ptype: CompiledPlanType, prepared: _Prepared) -> None:
        status = run.plan.status
        ok = status in prepared.activatable
        ref = self.bundle.lifecycle_of(ptype).ref
        run.note("plan_status", "lifecycle", "pass" if ok else "deny", ref, status=status)
        if not ok:
            wanted = " or ".join(f"`{s}`" for s in sorted(prepared.activatable)) or "no state"
            run.deny(
                Reason(
                    "PLAN_NOT_ACTIVATABLE",
                    f"a plan in status `{status}` cannot activate (it must be {wanted})",
                    ref,
                    details={"status": status, "activatable": sorted(prepared.activatable)},
                )
            )

    def _check_version(self, run: _Run, ptype: CompiledPlanType) -> None:
        written_for = run.plan.plan_type_version
        ok = written_for == ptype.version
        run.note(
            "plan_type_version",
            "version",
            "pass" if ok else "deny",
            ptype.ref,
            plan=written_for,
            bundle=ptype.version,
        )
        if not ok:
            run.deny(
                Reason(
                    "PLAN_TYPE_VERSION_MISMATCH",
                    f"the plan was written for `{ptype.name}` v{written_for}, "
                    f"the bundle has v{ptype.version}",
                    ptype.ref,
                    details={"plan": written_for, "bundle": ptype.version},
                )
            )

    def _check_steps(self, run: _Run, ptype: CompiledPlanType) -> None:
        risk = self.bundle.risk
        before_count = len(run.reasons)
        listed = {s.action_type for s in run.plan.steps}
        seen: set[str] = set()
        for step in run.plan.steps:
            spec = ptype.steps.get(step.action_type)
            if spec is None:
                run.deny(
                    Reason(
                        "STEP_TYPE_NOT_ALLOWED",
                        f"step `{step.action_type}` is not allowed for `{ptype.name}`",
                        ptype.ref,
                        step.step_id,
                        {"allowed": list(ptype.step_order)},
                    )
                )
                continue
            if step.action_type in seen:
                run.deny(
                    Reason(
                        "STEP_DUPLICATED",
                        f"step `{step.action_type}` appears twice",
                        spec.ref,
                        step.step_id,
                    )
                )
                continue
            seen.add(step.action_type)
            for before in spec.after:
                if before not in seen and before in listed:
                    run.deny(
                        Reason(
                            "STEP_ORDER_VIOLATION",
                            f"step `{step.action_type}` must come after `{before}`",
                            spec.ref,
                            step.step_id,
                            {"after": before},
                        )
                    )
            by_risk = risk.requires_human_touch(spec.risk)
            if (spec.human_touch or by_risk) and not step.human_touch:
                # Point at the plan type's step when it declares the touch point, else at the
                # RiskPolicy threshold that requires it.
                why = "is a human-touch point" if spec.human_touch else f"has risk `{spec.risk}`"
                run.deny(
                    Reason(
                        "HUMAN_TOUCH_REQUIRED",
                        f"step `{step.action_type}` {why} and must be marked `human_touch`",
                        spec.ref if spec.human_touch else risk.ref,
                        step.step_id,
                        {"risk": spec.risk, "human_touch_from": risk.human_touch_from},
                    )
                )
            for problem in _parameter_problems(step.parameters, spec.parameters):
                run.deny(
                    Reason(
                        "STEP_PARAMETER_INVALID",
                        f"step `{step.action_type}`: {problem}",
                        spec.ref,
                        step.step_id,
                    )
                )
        for name in ptype.step_order:
            if ptype.steps[name].required and name not in seen:
                run.deny(
                    Reason(
                        "REQUIRED_STEP_MISSING",
                        f"`{ptype.name}` requires step `{name}`",
                        ptype.steps[name].ref,
                    )
                )
        run.note(
            "steps",
            "structure",
            "pass" if len(run.reasons) == before_count else "deny",
            ptype.ref,
            steps=[s.action_type for s in run.plan.steps],
            plan_risk=run.plan_risk(),
        )

    def _check_expiry(self, run: _Run, prepared: _Prepared) -> None:
        now = run.facts.now
        expires = run.plan.expires_at
        start = run.plan.activated_at or now
        limit = start + prepared.max_duration
        days = prepared.max_duration.days
        result = "pass"
        if expires <= now:
            result = "deny"
            run.deny(
                Reason(
                    "EXPIRES_AT_NOT_IN_FUTURE",
                    f"expires_at `{expires.isoformat()}` is not after `{now.isoformat()}`",
                    prepared.max_duration_ref,
                    details={"expires_at": expires.isoformat(), "now": now.isoformat()},
                )
            )
        if expires > limit:
            result = "deny"
            run.deny(
                Reason(
                    "EXPIRES_AT_BEYOND_MAX_DURATION",
                    f"expires_at `{expires.isoformat()}` is more than {days} days "
                    f"after `{start.isoformat()}`",
                    prepared.max_duration_ref,
                    details={"max_duration_days": days, "start": start.isoformat()},
                )
            )
        run.note(
            "expires_at",
            "time",
            result,
            prepared.max_duration_ref,
            expires_at=expires,
            now=now,
            start=start,
            max_duration_days=days,
        )

    def _check_conflict(self, run: _Run) -> None:
        rule = self.bundle.conflict
        plan = run.plan
        mine = {f: getattr(plan, f) for f in rule.scope}
        holders = [
            other
            for other in run.facts.active_plans
            if other.plan_id != plan.plan_id
            and other.status in rule.occupying_states
            and all(getattr(other, f) == value for f, value in mine.items())
        ]
        run.note(
            "conflict",
            "conflict",
            "deny" if holders else "pass",
            rule.ref,
            scope=mine,
            holders=[h.plan_id for h in holders],
        )
        for holder in holders:
            run.deny(
                Reason(
                    "CONFLICT_ACTIVE_PLAN",
                    f"plan `{holder.plan_id}` is already {holder.status} for account "
                    f"`{plan.account_id}` and plan type `{plan.plan_type}`",
                    rule.ref,
                    details={"holder": holder.plan_id, "scope": mine},
                )
            )

    def _check_conditions(self, run: _Run, ptype: CompiledPlanType) -> None:
        about = run.facts.account.get("account_id")
        if about is not None and about != run.plan.account_id:
            run.deny(
                Reason(
                    "CONTEXT_INVALID",
                    f"the context describes account `{about}`, the plan is for "
                    f"`{run.plan.account_id}`",
                    ptype.ref,
                    details={"context_account": str(about), "plan_account": run.plan.account_id},
                )
            )
        if run.activation() is None:
            run.deny(
                Reason(
                    "CONTEXT_INVALID",
                    f"the context cannot be given to the rules: {run.activation_error}",
                    ptype.ref,
                )
            )
        for cond in ptype.eligibility:
            if run.condition(cond, "eligibility") is False:
                run.deny(
                    Reason(
                        "ELIGIBILITY_NOT_MET",
                        f"eligibility `{cond.id}` is false: `{' '.join(cond.expr.source.split())}`",
                        cond.ref,
                        details={"inputs": run.last_inputs},
                    )
                )
        for step in run.plan.steps:
            spec = ptype.steps.get(step.action_type)
            if spec is None:
                continue
            # A false `when` skips the step at dispatch; only an error denies here.
            if spec.when is not None:
                run.condition(spec.when, "when", step.step_id)


_PARAMETER_TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType(
    {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}
)


def _parameter_problems(values: Mapping[str, Any], specs: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(f"unknown parameter `{name}`")
            continue
        wanted = _PARAMETER_TYPES[spec.type]
        if (isinstance(value, bool) and spec.type != "boolean") or not isinstance(value, wanted):
            problems.append(f"parameter `{name}` must be {spec.type}")
        elif (
            isinstance(value, str) and spec.max_length is not None and len(value) > spec.max_length
        ):
            problems.append(f"parameter `{name}` is longer than {spec.max_length} characters")
    problems.extend(
        f"missing required parameter `{name}`"
        for name, spec in specs.items()
        if spec.required and name not in values
    )
    return problems
