"""Simulation scenarios: the file format (``kind: Scenario``) and its loading.

A scenario says which plans exist and when, what is known about their
accounts and how that changes over time, what the execution service answers
for each step attempt, what people do and when, how long to run, and
optionally what must come out of it::

    apiVersion: planpolicy/v1
    kind: Scenario
    metadata: {name: renewal_saved, description: The renewal meeting saves Acme}
    spec:
      start: 2026-01-05T09:00:00Z
      horizon_days: 90
      people: {alice: [account_executive], dana: [revenue_director]}
      accounts:
        acme:
          account: {account_id: acme, renewal_date: 2026-03-20T00:00:00Z, renewal: {status: AT_RISK}}
          signals: {open_p1_tickets: 0}
      plans:
        - {id: rd-acme, plan_type: RENEWAL_DEFENSE, account: acme, owner: alice,
           approve: {by: dana, at: day 0 10:00}}
      timeline:
        - {at: day 40, account: acme, set: {account.renewal.status: RENEWED}}
      executor:
        - {action: REQUEST_RENEWAL_MEETING, attempt: 1, outcome: fail, error: no answer}
      actions:
        - {at: day 3, plan: rd-acme, do: approve_step, step: ESCALATE_SUPPORT_RISK, by: dana}
      expect:
        - {plan: rd-acme, status: COMPLETED, reason: objective_met, before: day 60}

Times are ``day N`` or ``day N HH:MM`` (from ``start``), ``{day: N, hour: H,
minute: M}``, or an ISO-8601 time with a zone. Durations are ``30s``, ``5m``,
``36h`` or ``3d``.

:func:`load_scenario` reads a file with the hardened loader and reports every
problem as a located diagnostic (``file:line:column``): schema violations with
the same codes as policy files (PP201-PP206), and the scenario's own checks:

======  ===================================================================
PP701   unknown reference: plan, account, person, plan type or step
PP702   duplicate id
PP703   a time before ``start`` or after the horizon
PP704   invalid value: a time, a duration, a fact path, a combination of fields
PP705   a referenced file cannot be used (its own problems are listed too)
PP706   warning: something will fail closed (an account without facts)
======  ===================================================================

The JSON Schema of the file is generated into ``schemas/scenario.v1.json``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from planpolicy.diagnostics import Diagnostic, Location

if TYPE_CHECKING:
    from planpolicy.model import PolicyBundle
    from planpolicy.plan import RevenuePlanV1

__all__ = [
    "ActionSpec",
    "ApproveSpec",
    "DayTime",
    "ExecutorRule",
    "ExpectSpec",
    "Expectation",
    "FactChange",
    "FactChangeSpec",
    "HumanAction",
    "OutcomeSpec",
    "PlanEntry",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "ScenarioPlan",
    "ScriptOutcome",
    "ScriptRule",
    "ceil_to_grid",
    "describe_time",
    "format_duration",
    "load_scenario",
    "parse_duration",
    "parse_instant",
    "resolve_time",
    "step_uuid",
]

SCENARIO_KIND = "Scenario"

UNKNOWN_REFERENCE = "PP701"
DUPLICATE_ID = "PP702"
OUT_OF_RANGE = "PP703"
INVALID_VALUE = "PP704"
BAD_FILE = "PP705"
FAILS_CLOSED = "PP706"

PLAN_STATUSES = ("DRAFT", "APPROVED", "ACTIVE", "PAUSED", "COMPLETED", "ABORTED", "EXPIRED")
STEP_STATUSES = ("PENDING", "DISPATCHED", "SUCCEEDED", "FAILED", "SKIPPED")
COMMANDS = ("approve", "approve_step", "pause", "resume", "abort")

Ident = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$",
        description="An id: letters, digits, `_`, `.`, `:`, `@` or `-`",
    ),
]
ActionType = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][A-Z0-9_]{0,127}$", description="An action type, e.g. `PREP_RENEWAL_BRIEF`"
    ),
]
DurationText = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(s|m|h|d)$",
        description="A duration: a whole number and a unit, `s`, `m`, `h` or `d` (e.g. `5m`, `3d`)",
    ),
]
_TIME_TEXT = r"^(day\s+[0-9]+(\s+[0-9]{1,2}:[0-9]{2})?|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ].+)$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DayTime(_Spec):
    """A time as a day of the scenario (0 is the start) and a time of day."""

    day: int = Field(ge=0, le=3650, description="Days after `start`")
    hour: int = Field(default=0, ge=0, le=23, description="Hours after the day's start")
    minute: int = Field(default=0, ge=0, le=59, description="Minutes after the hour")


TimeSpec = Annotated[
    Annotated[
        str,
        Field(
            pattern=_TIME_TEXT,
            description="`day N`, `day N HH:MM` (from `start`) or an ISO-8601 time with a zone",
        ),
    ]
    | DayTime,
    Field(description="When: `day 12`, `day 12 09:30`, `{day: 12, hour: 9}` or an ISO-8601 time"),
]


class ScenarioMetadata(_Spec):
    """Name and purpose of the scenario."""

    name: Ident = Field(description="The scenario's name, shown in reports")
    description: str = Field(default="", max_length=2000, description="What the scenario shows")


class AccountSpec(_Spec):
    """What is known about an account at the start: inline, from a context file, or both."""

    file: str | None = Field(
        default=None,
        description="A context file (YAML or JSON, relative to the scenario) whose `account` "
        "and `signals` are the starting facts; inline values are merged over it",
    )
    account: dict[str, Any] = Field(default_factory=dict, description="`account.*` facts")
    signals: dict[str, Any] = Field(default_factory=dict, description="`signals.*` facts")


class ApproveSpec(_Spec):
    """Shorthand for an `approve` action on the plan."""

    by: Ident = Field(description="Who approves: a name under `people`")
    at: TimeSpec | None = Field(
        default=None, description="When (default: when the plan is created)"
    )
    reason: str = Field(default="", max_length=2000, description="Why, for the ledger")


class PlanEntry(_Spec):
    """A plan the scenario creates as a DRAFT: from a file, inline, or proposed for accounts.

    Exactly one of `file`, `plan` or `plan_type`. With `plan_type` the plan gets
    the plan type's steps (or `steps`), each marked human-touch where the policy
    requires it; `accounts` proposes one plan per account, with ids
    `<id>-<account>`.
    """

    id: Ident | None = Field(
        default=None, description="Plan id (required unless `file` or `plan` gives one)"
    )
    file: str | None = Field(
        default=None, description="A plan file (RevenuePlanV1, relative to the scenario)"
    )
    plan: dict[str, Any] | None = Field(default=None, description="An inline RevenuePlanV1")
    plan_type: ActionType | None = Field(default=None, description="Propose a plan of this type")
    account: Ident | None = Field(default=None, description="The account the plan is for")
    accounts: list[Ident] | None = Field(
        default=None, min_length=1, max_length=100_000, description="Propose one plan per account"
    )
    owner: Ident | None = Field(
        default=None, description="Accountable user (default: `created_by`)"
    )
    created_by: Ident | None = Field(
        default=None,
        description="Proposer: a person under `people`, or a system proposer (default `proposer`)",
    )
    objective: str = Field(default="", max_length=2000, description="The goal, in words")
    steps: list[ActionType] | None = Field(
        default=None, min_length=1, description="Action types (default: every step of the type)"
    )
    parameters: dict[ActionType, dict[str, str | int | float | bool]] = Field(
        default_factory=dict, description="Parameters per action type"
    )
    at: TimeSpec | None = Field(
        default=None, description="When the plan is proposed (default: day 0)"
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="`expires_at` in days from creation"
    )
    approve: ApproveSpec | None = Field(default=None, description="Approve the plan at a time")


class FactChangeSpec(_Spec):
    """A change of account facts at a time (`null` removes a field)."""

    at: TimeSpec
    account: Ident | None = Field(
        default=None, description="The account (may be left out when the scenario has one)"
    )
    set: dict[str, Any] = Field(
        min_length=1,
        description="Dotted paths under `account` or `signals` and their new values, "
        "e.g. `signals.open_p1_tickets: 2`",
    )


class OutcomeSpec(_Spec):
    """What the execution service does with one attempt."""

    outcome: Literal["succeed", "fail", "timeout", "pending"] = Field(
        description="`succeed`, `fail`, `timeout` (the action runs, the caller never hears) "
        "or `pending` (answers PENDING for `pending_for`, then `then`)"
    )
    error: str | None = Field(default=None, max_length=2000, description="Failure message")
    pending_for: DurationText | None = Field(
        default=None, description="How long a `pending` attempt stays pending"
    )
    then: Literal["succeed", "fail"] = Field(
        default="succeed", description="What a `pending` attempt ends as"
    )


class ExecutorRule(OutcomeSpec):
    """A scripted outcome for an action type (and attempt, and plan), maybe with a probability.

    The most specific rule applies: plan and attempt, then plan, then attempt,
    then the action type alone. Unscripted attempts succeed.
    """

    action: ActionType = Field(description="Action type")
    attempt: int | None = Field(default=None, ge=1, le=1000, description="Attempt number")
    plan: Ident | None = Field(default=None, description="Only for this plan")
    probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Chance of `outcome`; otherwise `otherwise` (drawn per attempt, seeded)",
    )
    otherwise: OutcomeSpec | None = Field(
        default=None,
        description="Outcome when the draw misses (default: `fail` for `succeed`, else `succeed`)",
    )


class ActionSpec(_Spec):
    """A person's command on a plan, through the same service as production."""

    at: TimeSpec
    plan: Ident = Field(description="The plan id")
    do: Literal["approve", "approve_step", "pause", "resume", "abort"] = Field(
        description="The command"
    )
    by: Ident = Field(description="Who: a name under `people`")
    step: ActionType | None = Field(default=None, description="For `approve_step`: the step")
    reason: str = Field(default="", max_length=2000, description="Why, for the ledger")


class ExpectSpec(_Spec):
    """An expectation about a plan: its end (`status`), a step, a ledger event or a refusal."""

    plan: Ident = Field(description="The plan id")
    status: (
        Literal["DRAFT", "APPROVED", "ACTIVE", "PAUSED", "COMPLETED", "ABORTED", "EXPIRED"] | None
    ) = Field(default=None, description="Plan status at the horizon")
    reason: str | None = Field(default=None, description="With `status`: the completion reason")
    step: ActionType | None = Field(default=None, description="A step (by action type)")
    runs: bool | None = Field(default=None, description="With `step`: dispatched at least once")
    attempts: int | None = Field(default=None, ge=0, le=1000, description="With `step`: attempts")
    step_status: Literal["PENDING", "DISPATCHED", "SUCCEEDED", "FAILED", "SKIPPED"] | None = Field(
        default=None, description="With `step`: its status at the horizon"
    )
    ledger: str | None = Field(
        default=None, description="A ledger event, e.g. `activation_rejected`"
    )
    contains: str | None = Field(default=None, description="With `ledger`: text in the reason")
    count: int | None = Field(
        default=None, ge=0, description="With `ledger` or `refused`: exactly this many (0: never)"
    )
    refused: Literal["approve", "approve_step", "pause", "resume", "abort"] | None = Field(
        default=None, description="A command on the plan that is refused"
    )
    before: TimeSpec | None = Field(default=None, description="It happens before this time")
    after: TimeSpec | None = Field(default=None, description="It happens at or after this time")


class ScenarioSpec(_Spec):
    """The scenario."""

    start: str = Field(description="Start time, ISO-8601 with a zone (day 0)")
    horizon_days: int = Field(ge=1, le=3650, description="How many days to simulate")
    tick: DurationText | None = Field(
        default=None, description="Poll interval being modelled (default `5m`; `--tick` wins)"
    )
    tenant: Ident = Field(default="sim", description="Tenant of every plan")
    people: dict[Ident, list[str]] = Field(
        default_factory=dict,
        description="People and their roles, as the AuthorityPolicy names them",
    )
    accounts: dict[Ident, AccountSpec] = Field(
        default_factory=dict, description="Facts of each account at the start"
    )
    plans: list[PlanEntry] = Field(min_length=1, description="Plans proposed during the scenario")
    timeline: list[FactChangeSpec] = Field(
        default_factory=list, description="Changes of account facts over time"
    )
    executor: list[ExecutorRule] = Field(
        default_factory=list, description="Scripted answers of the execution service"
    )
    actions: list[ActionSpec] = Field(default_factory=list, description="People's commands")
    expect: list[ExpectSpec] = Field(
        default_factory=list, description="What must come out (a failed one exits non-zero)"
    )


class ScenarioFile(_Spec):
    """A simulation scenario file."""

    api_version: Literal["planpolicy/v1"] = Field(alias="apiVersion")
    kind: Literal["Scenario"]
    metadata: ScenarioMetadata
    spec: ScenarioSpec


# --- the resolved scenario ------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioPlan:
    """A plan to create (as a DRAFT) at ``at``, proposed by ``created_by``."""

    plan: RevenuePlanV1
    at: datetime
    created_by: str
    location: Location | None = None


@dataclass(frozen=True)
class FactChange:
    """New values for fact paths of an account from ``at`` on (``None`` removes)."""

    at: datetime
    account: str
    values: tuple[tuple[tuple[str, ...], Any], ...]
    location: Location | None = None

    def describe(self) -> str:
        """``signals.open_p1_tickets = 2, ...`` for reports."""
        return ", ".join(f"{'.'.join(path)} = {_show(value)}" for path, value in self.values)


@dataclass(frozen=True)
class HumanAction:
    """A person's command at ``at``."""

    at: datetime
    plan_id: str
    do: str
    by: str
    roles: frozenset[str]
    step: str | None = None
    reason: str = ""
    location: Location | None = None


@dataclass(frozen=True)
class ScriptOutcome:
    """One scripted outcome: kind, error, how long pending, and the end of a pending one."""

    kind: str
    error: str | None = None
    pending_for: timedelta = timedelta(0)
    then: str = "succeed"

    def describe(self) -> str:
        """``fail (no answer)``, ``pending for 3d, then succeed``."""
        if self.kind == "pending":
            return f"pending for {format_duration(self.pending_for)}, then {self.then}"
        return self.kind + (f" ({self.error})" if self.error else "")


@dataclass(frozen=True)
class ScriptRule:
    """An executor rule, resolved: what it matches and what it answers."""

    action_type: str
    attempt: int | None
    plan_id: str | None
    outcome: ScriptOutcome
    probability: float | None = None
    otherwise: ScriptOutcome | None = None

    @property
    def specificity(self) -> int:
        """Higher for rules that name the plan (2) and the attempt (1): the most specific wins."""
        return (2 if self.plan_id is not None else 0) + (1 if self.attempt is not None else 0)


@dataclass(frozen=True)
class Expectation:
    """One expectation, with its description in words and where it is written."""

    kind: Literal["end", "step", "ledger", "refused"]
    plan_id: str
    text: str
    status: str | None = None
    reason: str | None = None
    step: str | None = None
    runs: bool | None = None
    attempts: int | None = None
    step_status: str | None = None
    event: str | None = None
    contains: str | None = None
    count: int | None = None
    command: str | None = None
    before: datetime | None = None
    after: datetime | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Scenario:
    """A scenario ready to run: absolute times, built plans, resolved people."""

    name: str
    description: str
    path: str
    start: datetime
    end: datetime
    tick: timedelta | None
    tenant: str
    people: Mapping[str, frozenset[str]]
    accounts: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]
    plans: tuple[ScenarioPlan, ...]
    changes: tuple[FactChange, ...] = ()
    actions: tuple[HumanAction, ...] = ()
    script: tuple[ScriptRule, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    warnings: tuple[Diagnostic, ...] = field(default_factory=tuple)

    @property
    def horizon(self) -> timedelta:
        """How long the scenario runs."""
        return self.end - self.start

    def when(self, at: datetime) -> str:
        """``day 12 09:30`` for a time of this scenario."""
        return describe_time(self.start, at)


class ScenarioError(ValueError):
    """The scenario cannot be run; ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        first = str(diagnostics[0]) if diagnostics else "invalid scenario"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)
        self.diagnostics = tuple(diagnostics)


# --- times and durations -------------------------------------------------------------

_DURATION_RE = re.compile(r"^([0-9]+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DAY_RE = re.compile(r"^day\s+([0-9]+)(?:\s+([0-9]{1,2}):([0-9]{2}))?$")


def parse_duration(text: str) -> timedelta:
    """``5m`` -> 5 minutes; ``ValueError`` for anything else."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"`{text}` is not a duration such as `30s`, `5m`, `36h` or `3d`")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """The shortest exact ``parse_duration`` text: ``5m``, ``36h``, ``3d``."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_instant(text: str) -> datetime:
    """An ISO-8601 time with a zone, in UTC; ``ValueError`` otherwise."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone: add `Z` or an offset")
    return parsed.astimezone(UTC)


def resolve_time(spec: str | DayTime, start: datetime) -> datetime:
    """An absolute time for ``day N [HH:MM]``, a :class:`DayTime` or an ISO time."""
    if isinstance(spec, DayTime):
        return start + timedelta(days=spec.day, hours=spec.hour, minutes=spec.minute)
    match = _DAY_RE.match(spec.strip())
    if match is not None:
        hours = int(match.group(2) or 0)
        minutes = int(match.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"`{spec}` has no such time of day")
        return start + timedelta(days=int(match.group(1)), hours=hours, minutes=minutes)
    return parse_instant(spec)


def describe_time(start: datetime, at: datetime) -> str:
    """``day 12 09:30`` (days and time since ``start``; seconds shown when not zero)."""
    delta = at - start
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
    return f"day {sign}{days} {clock}"


def _show(value: Any) -> str:
    if value is None:
        return "(removed)"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_scenario(path: str | Path, bundle: PolicyBundle) -> Scenario:
    """Read, check and resolve a scenario against ``bundle``; raises :class:`ScenarioError`.

    Every problem of the file is reported, not just the first (see
    :mod:`planpolicy.scenario_load`).
    """
    from planpolicy.collector import long_operation
    from planpolicy.scenario_load import load

    # a large scenario allocates millions of lasting objects, and no cyclic garbage
    with long_operation(pause=True):
        return load(path, bundle)


def step_uuid(tenant: str, plan_id: str, index: int, action_type: str) -> uuid.UUID:
    """A deterministic step id, so that two runs of a scenario have the same ledgers."""
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"planpolicy-sim:{tenant}:{plan_id}:{index}:{action_type}"
    )


def ceil_to_grid(at: datetime, start: datetime, tick: timedelta) -> datetime:
    """The first tick time ``start + k * tick`` (k >= 0) at or after ``at``."""
    if at <= start:
        return start
    return start - ((start - at) // tick) * tick
