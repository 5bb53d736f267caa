"""Plan proposals: the Proposer port, and the review every proposal goes through.

A proposer (the plan types' proposal rules, or an LLM) turns an account's
posture into a *candidate* plan. It never writes anything, and nothing it says
is trusted. :func:`review` decides what becomes of a candidate:

1. it must fit the **proposal format** (:data:`CANDIDATE_FIELDS`), within size
   bounds; a field only the lifecycle may set (``status`` other than DRAFT,
   approvals, progress) rejects it;
2. it is built into a :class:`~planpolicy.plan.RevenuePlanV1` that is always a
   DRAFT, with a fresh plan id and fresh step ids, ``human_touch`` wherever the
   policy requires it, ``expires_at`` from ``expires_in_days`` -- and validated
   against the RevenuePlanV1 schema;
3. the policy gate judges it as if it were approved: a structural problem
   (unknown plan type or step, missing required step, bad parameters, order,
   expiry beyond the plan type's maximum) rejects it; a situational one
   (eligibility, a conflicting ACTIVE plan, a rule that cannot be evaluated)
   travels with the DRAFT for the approver to see;
4. a short dry-run simulation (a :class:`DryRun` the caller supplies, e.g.
   ``orchestrator.proposals.SimulatedDryRun`` over :mod:`planpolicy.simulate`)
   shows what would happen once a person approves it.

The :class:`ProposalResult` holds the DRAFT or the rejection reasons, and an
:class:`ProposalAudit` record: proposer and model id, SHA-256 digests of the
inputs and of the raw output, the rationale and the bundle digest. Storing
either is the service's job (``orchestrator.proposals``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from planpolicy.facts import ActivePlanRef, Facts, FactsFileError, facts_from_mapping
from planpolicy.gate import Decision, Gate, activatable_states
from planpolicy.model import CompiledPlanType, PolicyBundle
from planpolicy.plan import PlanStatus, RevenuePlanV1
from planpolicy.reasons import Reason

__all__ = [
    "CANDIDATE_FIELDS",
    "LIMITS",
    "PROPOSAL_REASON_CODES",
    "SITUATIONAL_GATE_CODES",
    "STEP_FIELDS",
    "DryRun",
    "ProposalAudit",
    "ProposalInputError",
    "ProposalLimits",
    "ProposalRequest",
    "ProposalResult",
    "Proposer",
    "ProposerError",
    "ProposerOutput",
    "canonical_json",
    "digest",
    "review",
]


@dataclass(frozen=True)
class ProposalLimits:
    """Size bounds on what goes into a proposer and what may come out of one."""

    input_bytes: int = 64 * 1024
    """Canonical JSON size of the whole account input."""
    input_text: int = 4000
    """Characters of any one string in the account input."""
    input_depth: int = 8
    """Nesting depth of the account input."""
    history_items: int = 100
    goal_items: int = 20
    output_bytes: int = 64 * 1024
    """Canonical JSON size of a proposer's raw output."""
    steps: int = 20
    parameters: int = 20
    """Parameters per step."""
    parameter_text: int = 2000
    """Characters of a text parameter (the plan type may allow fewer)."""
    objective: int = 500
    rationale: int = 2000


LIMITS = ProposalLimits()
"""The bounds :func:`review` and the proposers use."""

CANDIDATE_FIELDS = frozenset({"plan_type", "objective", "expires_in_days", "steps", "rationale"})
"""The proposal format: what a proposer may say about a plan."""

STEP_FIELDS = frozenset({"action_type", "parameters", "human_touch"})
"""What a proposer may say about a step (``human_touch`` can only add touch points)."""

# Tolerated because a proposer may echo the RevenuePlanV1 shape; always replaced.
_REPLACED_FIELDS = frozenset({"plan_id", "schema_version"})
_REPLACED_STEP_FIELDS = frozenset({"step_id"})
# Set only by the lifecycle, the approver or the orchestrator: a proposal never does.
_LIFECYCLE_FIELDS = frozenset(
    {
        "approved_by",
        "approved_at",
        "activated_at",
        "ended_at",
        "completion_reason",
        "bundle_digest",
        "next_due_at",
        "version",
        "created_by",
        "created_at",
        "updated_at",
        "owner",
        "plan_type_version",
        "expires_at",
    }
)
_LIFECYCLE_STEP_FIELDS = frozenset(
    {
        "status",
        "attempts",
        "human_approved_by",
        "human_approved_at",
        "due_at",
        "last_error",
        "skip_reason",
        "completed_at",
    }
)

PROPOSAL_REASON_CODES: dict[str, str] = {
    "PROPOSAL_NOT_APPLICABLE": "no plan type's proposal rules hold for the account",
    "PROPOSAL_CONDITION_FALSE": "a proposal rule of a plan type is false",
    "PROPOSAL_MALFORMED": "the proposer's output is not a plan proposal (shape, type, unknown field)",
    "PROPOSAL_FIELD_FORBIDDEN": "the output sets what only the lifecycle may set (status, approvals, "
    "tenant, account)",
    "PROPOSAL_TOO_LARGE": "the output exceeds a size bound (steps, parameters, text)",
    "PROPOSAL_SCHEMA_INVALID": "the proposed plan does not fit the RevenuePlanV1 schema",
    "PROPOSAL_PLAN_TYPE_NOT_REQUESTED": "the plan type is not one the tenant's goals ask for",
    "PROPOSER_FAILED": "the proposer gave no answer (error, timeout, throttling after retries)",
}
"""Reason codes of rejected proposals, besides the gate's structural codes."""

SITUATIONAL_GATE_CODES = frozenset(
    {"ELIGIBILITY_NOT_MET", "RULE_EVALUATION_ERROR", "CONTEXT_INVALID", "CONFLICT_ACTIVE_PLAN"}
)
"""Gate reasons that travel with a DRAFT; any other gate reason rejects the proposal."""


# --- inputs ------------------------------------------------------------------------


class ProposalInputError(ValueError):
    """The account input cannot be used; ``problems`` holds ``(path, message)`` pairs."""

    def __init__(self, problems: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _path, message in problems) or "invalid input")
        self.problems = tuple(problems)


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _unicode(text: str) -> bool:
    """Encodable as UTF-8 (no lone surrogates) and free of NUL characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


class _JsonCheck:
    """Turns YAML data into bounded plain JSON values, collecting problems."""

    def __init__(self, limits: ProposalLimits) -> None:
        self.limits = limits
        self.problems: list[tuple[tuple[str | int, ...], str]] = []

    def value(self, value: Any, path: tuple[str | int, ...], depth: int = 0) -> Any:
        where = ".".join(str(p) for p in path)
        if depth > self.limits.input_depth:
            self.problems.append(
                (path, f"`{where}` is nested deeper than {self.limits.input_depth}")
            )
            return None
        if isinstance(value, datetime | date):
            return _iso(value)
        if isinstance(value, str):
            if not _unicode(value):
                self.problems.append((path, f"`{where}` is not valid unicode text"))
                return ""
            if len(value) > self.limits.input_text:
                self.problems.append(
                    (path, f"`{where}` is longer than {self.limits.input_text} characters")
                )
            return value
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append((path, f"`{where}` is not a finite number"))
            return None
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str) or not _unicode(key):
                    self.problems.append((path, f"`{where}` has a key that is not text"))
                    continue
                out[key] = self.value(item, (*path, key), depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(value)]
        self.problems.append((path, f"`{where}` holds an unsupported `{type(value).__name__}`"))
        return None


_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")


def _ident(value: Any) -> bool:
    return isinstance(value, str) and _IDENT.fullmatch(value) is not None


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` when it is absent (``None``); empty values are kept."""
    return default if value is None else value


def _instant(value: Any, problems: list[tuple[tuple[str | int, ...], str]]) -> datetime | None:
    """``now`` as an aware datetime (naive means UTC); ``None`` with a problem otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append((("now",), f"`now` is not an ISO-8601 time: `{value[:40]}`"))
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=UTC)
    if not isinstance(value, datetime):
        problems.append((("now",), "`now` (the proposal time) is required"))
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ProposalRequest:
    """What a proposer is told: one account of one tenant, at one moment.

    ``account`` and ``signals`` are the evaluation context's roots; ``history``
    and ``goals`` are data for the proposer (goals naming a ``plan_type`` limit
    the plan types proposed, in their order). Every value is plain, bounded JSON.
    """

    tenant_id: str
    account_id: str
    owner: str
    now: datetime
    account: Mapping[str, Any]
    signals: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Any, ...] = ()
    goals: tuple[Any, ...] = ()
    requested_by: str | None = None

    @classmethod
    def from_mapping(
        cls,
        raw: Any,
        *,
        owner: str | None = None,
        now: datetime | None = None,
        requested_by: str | None = None,
        limits: ProposalLimits = LIMITS,
    ) -> ProposalRequest:
        """Validate an account file's data; raises :class:`ProposalInputError`.

        Keys: ``tenant_id``, ``account`` (with ``account_id``), ``signals``,
        ``history`` (a list), ``goals`` (a list), and optionally ``owner`` and
        ``now``; the keyword arguments override the last two.
        """
        if not isinstance(raw, Mapping):
            raise ProposalInputError([((), "an account file must be a mapping")])
        check = _JsonCheck(limits)
        problems = check.problems
        known = {"tenant_id", "owner", "now", "account", "signals", "history", "goals"}
        problems.extend(((str(k),), f"unknown field `{k}`") for k in raw if k not in known)
        tenant = raw.get("tenant_id")
        if not _ident(tenant):
            problems.append((("tenant_id",), "`tenant_id` must be an identifier"))
        account = check.value(_or(raw.get("account"), {}), ("account",))
        if not isinstance(account, dict):
            problems.append((("account",), "`account` must be a mapping"))
            account = {}
        account_id = account.get("account_id")
        if not _ident(account_id):
            problems.append(
                (("account", "account_id"), "`account.account_id` must be an identifier")
            )
        signals = check.value(_or(raw.get("signals"), {}), ("signals",))
        if not isinstance(signals, dict):
            problems.append((("signals",), "`signals` must be a mapping"))
            signals = {}
        lists: dict[str, list[Any]] = {}
        for name, most in (("history", limits.history_items), ("goals", limits.goal_items)):
            items = check.value(_or(raw.get(name), []), (name,))
            if not isinstance(items, list):
                problems.append(((name,), f"`{name}` must be a list"))
                items = []
            elif len(items) > most:
                problems.append(((name,), f"`{name}` has more than {most} items"))
            lists[name] = items
        owner = owner if owner is not None else raw.get("owner")
        if not _ident(owner):
            problems.append((("owner",), "`owner` (the user accountable for the plan) is required"))
        when = _instant(now if now is not None else raw.get("now"), problems)
        if problems or when is None:
            raise ProposalInputError(problems)
        request = cls(
            tenant_id=str(tenant),
            account_id=str(account_id),
            owner=str(owner),
            now=when.astimezone(UTC),
            account=account,
            signals=signals,
            history=tuple(lists["history"]),
            goals=tuple(lists["goals"]),
            requested_by=requested_by,
        )
        size = len(canonical_json(request.as_data()).encode())
        if size > limits.input_bytes:
            raise ProposalInputError(
                [((), f"the account input is {size} bytes, more than {limits.input_bytes}")]
            )
        try:
            request.facts()
        except FactsFileError as exc:
            raise ProposalInputError(exc.problems) from None
        return request

    def as_data(self) -> dict[str, Any]:
        """The inputs as plain JSON (what is digested into the audit record)."""
        return {
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "owner": self.owner,
            "now": _iso(self.now),
            "account": dict(self.account),
            "signals": dict(self.signals),
            "history": list(self.history),
            "goals": list(self.goals),
        }

    @property
    def digest(self) -> str:
        """``sha256:`` digest of the canonical JSON of :meth:`as_data`."""
        return digest(self.as_data())

    def facts(self, active_plans: Sequence[ActivePlanRef] = ()) -> Facts:
        """The facts the rules and the gate see (raises ``FactsFileError``)."""
        facts = facts_from_mapping(
            {"now": self.now, "account": dict(self.account), "signals": dict(self.signals)}
        )
        return Facts(facts.now, facts.account, facts.signals, tuple(active_plans))

    def goal_plan_types(self) -> tuple[str, ...]:
        """Plan types the tenant's goals name, in order (empty: any plan type)."""
        names = [g.get("plan_type") for g in self.goals if isinstance(g, Mapping)]
        return tuple(dict.fromkeys(n for n in names if isinstance(n, str)))

    def plan_types(self, bundle: PolicyBundle) -> list[CompiledPlanType]:
        """The plan types a proposer may propose for this request, in preference order."""
        wanted = self.goal_plan_types()
        if wanted:
            return [bundle.plan_types[n] for n in wanted if n in bundle.plan_types]
        return [bundle.plan_types[n] for n in sorted(bundle.plan_types)]


# --- the port ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProposerOutput:
    """What a proposer returns. Nothing in it is trusted.

    ``candidate`` is the proposed plan in the proposal format (``None``: the
    proposer proposes nothing, and ``reasons`` says why); ``raw`` is the output
    exactly as received (digested into the audit record); ``evidence`` is extra
    audit data (rules that held, token usage, ...).
    """

    candidate: Any
    raw: Any
    rationale: str = ""
    reasons: tuple[Reason, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)


class ProposerError(Exception):
    """The proposer could not answer; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool = False, raw: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.raw = raw


class Proposer(Protocol):
    """Turns a :class:`ProposalRequest` into a candidate plan (never stores or approves)."""

    @property
    def name(self) -> str:
        """Proposer id, e.g. ``rules`` or ``bedrock``."""
        ...

    @property
    def model_id(self) -> str | None:
        """The model behind it, if any."""
        ...

    def propose(self, bundle: PolicyBundle, request: ProposalRequest) -> ProposerOutput:
        """A candidate for ``request``; raises :class:`ProposerError` when it cannot answer."""
        ...


class DryRun(Protocol):
    """A short simulation of the DRAFT as if a person approved it; a JSON-able summary."""

    def __call__(
        self, bundle: PolicyBundle, plan: RevenuePlanV1, facts: Facts
    ) -> Mapping[str, Any]:
        """Simulate ``plan``, approved at ``facts.now``; must not touch any real store."""
        ...


# --- results -----------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON; values JSON cannot hold are written as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(value: Any) -> str:
    """``sha256:`` + hex digest of :func:`canonical_json` of ``value``."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ProposalAudit:
    """The audit record of one proposal, drafted or rejected."""

    proposal_id: str
    time: datetime
    tenant_id: str
    account_id: str
    proposer: str
    model_id: str | None
    input_digest: str
    output_digest: str | None
    rationale: str
    bundle_digest: str
    document_versions: Mapping[str, int]
    requested_by: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (ledger evidence, rejection log, CLI, API)."""
        return {
            "proposal_id": self.proposal_id,
            "time": _iso(self.time),
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "proposer": self.proposer,
            "model_id": self.model_id,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "rationale": self.rationale,
            "bundle_digest": self.bundle_digest,
            "document_versions": dict(self.document_versions),
            "requested_by": self.requested_by,
            "proposer_evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ProposalResult:
    """A reviewed proposal: a DRAFT with its gate decision and dry run, or a rejection."""

    outcome: Literal["drafted", "rejected"]
    audit: ProposalAudit
    plan: RevenuePlanV1 | None = None
    reasons: tuple[Reason, ...] = ()
    decision: Decision | None = None
    simulation: Mapping[str, Any] | None = None

    @property
    def drafted(self) -> bool:
        return self.outcome == "drafted"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form; the plan in RevenuePlanV1 JSON."""
        return {
            "outcome": self.outcome,
            "proposal": self.audit.as_dict(),
            "plan": self.plan.model_dump(mode="json") if self.plan else None,
            "reasons": [r.as_dict() for r in self.reasons],
            "decision": self.decision.as_dict() if self.decision else None,
            "simulation": dict(self.simulation) if self.simulation is not None else None,
        }

    def evidence(self) -> dict[str, Any]:
        """What the ledger entry (or the rejection record) carries as evidence."""
        data = self.audit.as_dict()
        data["outcome"] = self.outcome
        if self.plan is not None:
            data["plan_type"] = self.plan.plan_type
            data["plan_type_version"] = self.plan.plan_type_version
            data["steps"] = [s.action_type for s in self.plan.steps]
        if self.reasons:
            data["reasons"] = [r.as_dict() for r in self.reasons]
        if self.decision is not None:
            data["decision"] = self.decision.as_dict()
        if self.simulation is not None:
            data["simulation"] = dict(self.simulation)
        return data


# --- the review --------------------------------------------------------------------


def _reason(code: str, message: str, **details: Any) -> Reason:
    return Reason(code, message, details=details)


def _where(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(root)"


class _Candidate:
    """Checks a candidate against the proposal format, collecting every problem."""

    def __init__(self, request: ProposalRequest, limits: ProposalLimits) -> None:
        self.request = request
        self.limits = limits
        self.reasons: list[Reason] = []

    def problem(self, code: str, message: str) -> None:
        self.reasons.append(_reason(code, message))

    def fields(self, data: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
        lifecycle = _LIFECYCLE_STEP_FIELDS if path else _LIFECYCLE_FIELDS
        replaced = _REPLACED_STEP_FIELDS if path else _REPLACED_FIELDS
        prefix = f"{path}." if path else ""
        for key in data:
            name = str(key)
            if name in allowed or name in replaced:
                continue
            if not path and name == "status":
                if data[key] != PlanStatus.DRAFT.value:
                    self.problem(
                        "PROPOSAL_FIELD_FORBIDDEN",
                        f"a proposal cannot set `status` to `{str(data[key])[:40]}`: "
                        "proposals are always DRAFT and only a person approves them",
                    )
            elif not path and name in ("tenant_id", "account_id"):
                expected = getattr(self.request, name)
                if data[key] != expected:
                    self.problem(
                        "PROPOSAL_FIELD_FORBIDDEN",
                        f"the proposal names {name} `{str(data[key])[:128]}`, "
                        f"the request is for `{expected}`",
                    )
            elif name in lifecycle or (path and name == "status"):
                self.problem(
                    "PROPOSAL_FIELD_FORBIDDEN",
                    f"a proposal cannot set `{prefix}{name[:64]}`: only the lifecycle, "
                    "an approver or the orchestrator sets it",
                )
            else:
                self.problem("PROPOSAL_MALFORMED", f"unknown field `{prefix}{name[:64]}`")

    def text(self, data: Mapping[str, Any], key: str, most: int, *, required: bool) -> str:
        value = data.get(key)
        if value is None:
            if required:
                self.problem("PROPOSAL_MALFORMED", f"`{key}` is missing")
            return ""
        if not isinstance(value, str):
            self.problem("PROPOSAL_MALFORMED", f"`{key}` must be text")
            return ""
        if len(value) > most:
            self.problem("PROPOSAL_TOO_LARGE", f"`{key}` is longer than {most} characters")
        return value

    def steps(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or not raw:
            self.problem("PROPOSAL_MALFORMED", "`steps` must be a non-empty list")
            return []
        if len(raw) > self.limits.steps:
            self.problem("PROPOSAL_TOO_LARGE", f"more than {self.limits.steps} steps")
            return []
        steps = []
        for i, item in enumerate(raw):
            where = f"steps[{i}]"
            if not isinstance(item, Mapping):
                self.problem("PROPOSAL_MALFORMED", f"`{where}` must be a mapping")
                continue
            self.fields(item, STEP_FIELDS, where)
            action = item.get("action_type")
            if not isinstance(action, str) or not action:
                self.problem("PROPOSAL_MALFORMED", f"`{where}.action_type` must be text")
                continue
            params = item.get("parameters", {})
            if params is None:
                params = {}
            if not isinstance(params, Mapping):
                self.problem("PROPOSAL_MALFORMED", f"`{where}.parameters` must be a mapping")
                params = {}
            elif len(params) > self.limits.parameters:
                self.problem(
                    "PROPOSAL_TOO_LARGE",
                    f"`{where}` has more than {self.limits.parameters} parameters",
                )
                params = {}
            for name, value in params.items():
                if isinstance(value, str) and len(value) > self.limits.parameter_text:
                    self.problem(
                        "PROPOSAL_TOO_LARGE",
                        f"`{where}.parameters.{str(name)[:64]}` is longer than "
                        f"{self.limits.parameter_text} characters",
                    )
                elif not isinstance(value, str | int | float | bool):
                    self.problem(
                        "PROPOSAL_MALFORMED",
                        f"`{where}.parameters.{str(name)[:64]}` must be text, a number or a boolean",
                    )
            touch = item.get("human_touch", False)
            if not isinstance(touch, bool):
                self.problem("PROPOSAL_MALFORMED", f"`{where}.human_touch` must be a boolean")
                touch = False
            steps.append({"action_type": action[:128], "parameters": dict(params), "touch": touch})
        return steps


def _schema_reasons(exc: ValidationError) -> list[Reason]:
    return [
        _reason(
            "PROPOSAL_SCHEMA_INVALID",
            f"plan `{_where([p for p in err['loc'] if isinstance(p, str | int)])}`: "
            f"{err['msg'][:1].lower()}{err['msg'][1:]}",
        )
        for err in exc.errors()[:20]
    ]


def _approved_state(bundle: PolicyBundle, ptype: CompiledPlanType | None) -> str:
    """The state a DRAFT reaches on approval (the first gate-guarded source it can reach)."""
    if ptype is None:
        return PlanStatus.APPROVED.value
    lifecycle = bundle.lifecycle_of(ptype)
    targets = activatable_states(bundle, ptype)
    for transition in lifecycle.transitions:
        if lifecycle.initial in transition.sources and transition.dest in targets:
            return transition.dest
    return PlanStatus.APPROVED.value


def review(
    bundle: PolicyBundle,
    request: ProposalRequest,
    proposer: Proposer,
    output: ProposerOutput | ProposerError,
    *,
    active_plans: Sequence[ActivePlanRef] = (),
    dry_run: DryRun | None = None,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    limits: ProposalLimits = LIMITS,
) -> ProposalResult:
    """Validate, bound and force ``output`` to a DRAFT, gate it and dry-run it.

    Never raises for anything a proposer returns: a bad output (or a
    :class:`ProposerError`) becomes a rejected result with reasons.
    ``new_id`` makes plan and step ids (fresh UUIDs; tests pass their own).
    """
    proposal_id = str(new_id())
    raw = output.raw
    raw_digest = digest(raw) if raw is not None else None
    evidence: dict[str, Any] = {}
    if isinstance(output, ProposerOutput):
        evidence.update(output.evidence)

    def audit(rationale: str) -> ProposalAudit:
        return ProposalAudit(
            proposal_id=proposal_id,
            time=request.now,
            tenant_id=request.tenant_id,
            account_id=request.account_id,
            proposer=proposer.name,
            model_id=proposer.model_id,
            input_digest=request.digest,
            output_digest=raw_digest,
            rationale=rationale[: limits.rationale],
            bundle_digest=bundle.digest,
            document_versions=bundle.versions(),
            requested_by=request.requested_by,
            evidence=evidence,
        )

    def rejected(reasons: Iterable[Reason], rationale: str = "") -> ProposalResult:
        return ProposalResult("rejected", audit(rationale), reasons=tuple(reasons))

    if isinstance(output, ProposerError):
        evidence["retryable"] = output.retryable
        return rejected([_reason("PROPOSER_FAILED", output.message, retryable=output.retryable)])
    if output.candidate is None:
        reasons = output.reasons or (
            _reason("PROPOSAL_NOT_APPLICABLE", "the proposer proposes no plan"),
        )
        return rejected(reasons, output.rationale)
    size = len(canonical_json(raw).encode("utf-8"))
    if size > limits.output_bytes:
        return rejected(
            [
                _reason(
                    "PROPOSAL_TOO_LARGE",
                    f"the proposer's output is {size} bytes, more than {limits.output_bytes}",
                )
            ]
        )
    candidate = output.candidate
    if not isinstance(candidate, Mapping):
        return rejected([_reason("PROPOSAL_MALFORMED", "the proposal must be a mapping")])
    check = _Candidate(request, limits)
    check.fields(candidate, CANDIDATE_FIELDS, "")
    plan_type = check.text(candidate, "plan_type", 128, required=True)
    objective = check.text(candidate, "objective", limits.objective, required=False)
    rationale = check.text(candidate, "rationale", limits.rationale, required=False)
    rationale = rationale or output.rationale
    days = candidate.get("expires_in_days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        check.problem("PROPOSAL_MALFORMED", "`expires_in_days` must be a whole number of days")
        days = 1
    steps = check.steps(candidate.get("steps"))
    if check.reasons:
        return rejected(check.reasons, rationale)

    ptype = bundle.plan_type(plan_type)
    wanted = [p.name for p in request.plan_types(bundle)]
    if ptype is not None and plan_type not in wanted:
        return rejected(
            [
                _reason(
                    "PROPOSAL_PLAN_TYPE_NOT_REQUESTED",
                    f"plan type `{plan_type}` is not among those the goals ask for: "
                    + ", ".join(f"`{n}`" for n in wanted),
                )
            ],
            rationale,
        )

    # Forced to a DRAFT: fresh ids, human touch where the policy requires it.
    plan_steps = []
    for step in steps:
        spec = ptype.steps.get(step["action_type"]) if ptype else None
        required_touch = spec is not None and (
            spec.human_touch or bundle.risk.requires_human_touch(spec.risk)
        )
        plan_steps.append(
            {
                "step_id": new_id(),
                "action_type": step["action_type"],
                "parameters": step["parameters"],
                "human_touch": bool(step["touch"] or required_touch),
            }
        )
    now = request.now
    try:
        plan = RevenuePlanV1.model_validate(
            {
                "plan_id": str(new_id()),
                "tenant_id": request.tenant_id,
                "account_id": request.account_id,
                "plan_type": plan_type,
                "plan_type_version": ptype.version if ptype else 1,
                "status": PlanStatus.DRAFT.value,
                "objective": objective or (ptype.description if ptype else ""),
                "steps": plan_steps,
                "owner": request.owner,
                "created_by": f"proposer:{proposer.name}",
                "created_at": now,
                "updated_at": now,
                "expires_at": now + timedelta(days=days),
            }
        )
    except ValidationError as exc:
        return rejected(_schema_reasons(exc), rationale)

    # The gate judges the plan as if approved: structure rejects, situation travels.
    facts = request.facts(active_plans)
    approved = plan.model_copy(update={"status": _approved_state(bundle, ptype)})
    decision = Gate(bundle).evaluate(approved, facts)
    structural = [r for r in decision.reasons if r.code not in SITUATIONAL_GATE_CODES]
    if structural:
        return rejected(structural, rationale)
    simulation = dry_run(bundle, plan, facts) if dry_run is not None else None
    return ProposalResult(
        "drafted", audit(rationale), plan=plan, decision=decision, simulation=simulation
    )
