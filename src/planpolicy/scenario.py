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
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Location, Severity
from planpolicy.loader import SourceDocument, load_file

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

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
    "format_duration",
    "load_scenario",
    "parse_duration",
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


# --- loading ------------------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    from planpolicy.schemagen import scenario_schema

    return Draft202012Validator(scenario_schema())


def read_scenario_file(
    path: str | Path, sink: DiagnosticSink
) -> tuple[SourceDocument, ScenarioFile] | None:
    """Load and schema-check a scenario file; problems go to ``sink``."""
    from planpolicy.schema import report_schema_errors

    loaded = load_file(path, sink)
    if loaded is None:
        return None
    if len(loaded.documents) != 1:
        sink.error(
            "PP201",
            f"a scenario file holds one document, found {len(loaded.documents)}",
            Location(str(path)),
        )
        return None
    doc = loaded.documents[0]
    data = doc.data
    if not isinstance(data, dict) or data.get("kind") != SCENARIO_KIND:
        kind = data.get("kind") if isinstance(data, dict) else None
        where = ("kind",) if isinstance(data, dict) and "kind" in data else ()
        sink.error(
            "PP205",
            f"a scenario file has `kind: {SCENARIO_KIND}`, got `{kind}`",
            doc.location(where),
        )
        return None
    try:
        return doc, ScenarioFile.model_validate(data, strict=True)
    except ValidationError as exc:
        if not report_schema_errors(_validator(), doc, sink):
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
                sink.error(
                    "PP201", f"`{'.'.join(map(str, loc))}`: {err['msg'].lower()}", doc.location(loc)
                )
        return None


def load_scenario(path: str | Path, bundle: PolicyBundle) -> Scenario:
    """Read, check and resolve a scenario against ``bundle``; raises :class:`ScenarioError`.

    Every problem of the file is reported, not just the first.
    """
    sink = DiagnosticSink()
    read = read_scenario_file(path, sink)
    if read is None:
        raise ScenarioError(sink.sorted())
    doc, model = read
    scenario = _Resolver(doc, model, bundle, sink).resolve()
    errors = [d for d in sink.sorted() if d.is_error]
    if errors or scenario is None:
        raise ScenarioError(errors or sink.sorted())
    return scenario


def step_uuid(tenant: str, plan_id: str, index: int, action_type: str) -> uuid.UUID:
    """A deterministic step id, so that two runs of a scenario have the same ledgers."""
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"planpolicy-sim:{tenant}:{plan_id}:{index}:{action_type}"
    )


class _Resolver:
    """Turns a schema-valid :class:`ScenarioFile` into a :class:`Scenario`, reporting problems."""

    def __init__(
        self, doc: SourceDocument, model: ScenarioFile, bundle: PolicyBundle, sink: DiagnosticSink
    ) -> None:
        self.doc = doc
        self.model = model
        self.spec = model.spec
        self.bundle = bundle
        self.sink = sink
        self.base = Path(doc.path).parent
        self.start = datetime(1970, 1, 1, tzinfo=UTC)
        self.end = self.start
        self.by_entry: dict[int, list[str]] = {}

    def at(self, *path: str | int) -> Location:
        return self.doc.location(("spec", *path))

    def error(self, code: str, message: str, *path: str | int, hint: str | None = None) -> None:
        self.sink.error(code, message, self.at(*path), hint=hint)

    # -- entry point --------------------------------------------------------------

    def resolve(self) -> Scenario | None:
        spec = self.spec
        try:
            self.start = parse_instant(spec.start)
        except ValueError as exc:
            self.error(INVALID_VALUE, f"`start`: {exc}", "start")
            return None
        self.end = self.start + timedelta(days=spec.horizon_days)
        tick = None
        if spec.tick is not None:
            tick = parse_duration(spec.tick)
            if tick <= timedelta(0):
                self.error(INVALID_VALUE, "`tick` must be longer than zero", "tick")
        people = {name: frozenset(roles) for name, roles in spec.people.items()}
        self._check_roles()
        accounts = self._accounts()
        plans = self._plans(people)
        known_plans = {p.plan.plan_id: p for p in plans}
        changes = self._changes(accounts)
        actions = self._actions(people, known_plans)
        script = self._script(known_plans)
        expectations = self._expectations(known_plans)
        for plan in plans:
            if plan.plan.account_id not in accounts:
                self.sink.add(
                    Diagnostic(
                        FAILS_CLOSED,
                        f"account `{plan.plan.account_id}` of plan `{plan.plan.plan_id}` has no "
                        "facts under `accounts`: its rules will fail closed",
                        plan.location,
                        Severity.WARNING,
                    )
                )
        return Scenario(
            name=self.model.metadata.name,
            description=self.model.metadata.description,
            path=self.doc.path,
            start=self.start,
            end=self.end,
            tick=tick,
            tenant=spec.tenant,
            people=people,
            accounts=accounts,
            plans=tuple(plans),
            changes=tuple(sorted(changes, key=lambda c: c.at)),
            actions=tuple(sorted(actions, key=lambda a: a.at)),
            script=tuple(script),
            expectations=tuple(expectations),
            warnings=tuple(d for d in self.sink.sorted() if not d.is_error),
        )

    # -- pieces -------------------------------------------------------------------

    def time(
        self, spec: str | DayTime | None, *path: str | int, default: datetime | None = None
    ) -> datetime | None:
        """An absolute time inside the scenario, or ``None`` (reported) when it is not."""
        if spec is None:
            return default
        try:
            when = resolve_time(spec, self.start)
        except ValueError as exc:
            self.error(INVALID_VALUE, str(exc), *path)
            return None
        if when < self.start or when > self.end:
            self.error(
                OUT_OF_RANGE,
                f"`{describe_time(self.start, when)}` is outside the scenario "
                f"(day 0 to day {self.spec.horizon_days})",
                *path,
            )
            return None
        return when

    def _check_roles(self) -> None:
        known = {role for grant in self.bundle.authority.grants for role in grant.roles}
        for name, roles in self.spec.people.items():
            for index, role in enumerate(roles):
                if role not in known:
                    shown = ", ".join(f"`{r}`" for r in sorted(known))
                    self.sink.warning(
                        UNKNOWN_REFERENCE,
                        f"role `{role}` of `{name}` is granted nothing by the AuthorityPolicy",
                        self.at("people", name, index),
                        hint=f"roles with grants: {shown}",
                    )

    def _accounts(self) -> dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]]:
        from planpolicy.inputs import InputError, read_document

        out: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        for name, spec in self.spec.accounts.items():
            account: dict[str, Any] = {"account_id": name}
            signals: dict[str, Any] = {}
            if spec.file is not None:
                path = self.base / spec.file
                try:
                    data = read_document(path, "context").data
                except InputError as exc:
                    self.sink.extend(exc.diagnostics)
                    self.error(
                        BAD_FILE,
                        f"cannot use the context file `{spec.file}`",
                        "accounts",
                        name,
                        "file",
                    )
                    continue
                if not isinstance(data, dict):
                    self.error(
                        BAD_FILE,
                        f"the context file `{spec.file}` is not a mapping",
                        "accounts",
                        name,
                        "file",
                    )
                    continue
                for root, target in (("account", account), ("signals", signals)):
                    value = data.get(root)
                    if isinstance(value, dict):
                        target.update(value)
                    elif value is not None:
                        self.error(
                            BAD_FILE,
                            f"`{root}` in `{spec.file}` is not a mapping",
                            "accounts",
                            name,
                            "file",
                        )
            account.update(spec.account)
            signals.update(spec.signals)
            out[name] = (account, signals)
        return out

    def _plans(self, people: Mapping[str, frozenset[str]]) -> list[ScenarioPlan]:
        plans: list[ScenarioPlan] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.spec.plans):
            sources = [n for n in ("file", "plan", "plan_type") if getattr(entry, n) is not None]
            if len(sources) != 1:
                self.error(
                    INVALID_VALUE,
                    "a plan entry needs exactly one of `file`, `plan` or `plan_type`"
                    + (f", got {', '.join(f'`{s}`' for s in sources)}" if sources else ""),
                    "plans",
                    index,
                )
                continue
            at = self.time(entry.at, "plans", index, "at", default=self.start)
            if at is None:
                continue
            built = self._build(entry, index, at)
            for plan in built:
                if plan.plan_id in seen:
                    self.error(
                        DUPLICATE_ID, f"plan id `{plan.plan_id}` is used twice", "plans", index
                    )
                    continue
                seen[plan.plan_id] = index
                self.by_entry.setdefault(index, []).append(plan.plan_id)
                created_by = entry.created_by or plan.created_by
                plans.append(ScenarioPlan(plan, at, created_by, self.at("plans", index)))
        return plans

    def _build(self, entry: PlanEntry, index: int, at: datetime) -> list[RevenuePlanV1]:
        from planpolicy.inputs import InputError, plan_from_document, read_plan

        if entry.plan_type is not None:
            return self._propose(entry, index, at)
        try:
            if entry.file is not None:
                plan = read_plan(self.base / entry.file)
            else:
                plan = plan_from_document(entry.plan, self.doc, ("spec", "plans", index, "plan"))
        except InputError as exc:
            self.sink.extend(exc.diagnostics)
            if entry.file is not None:
                self.error(
                    BAD_FILE, f"cannot use the plan file `{entry.file}`", "plans", index, "file"
                )
            return []
        update: dict[str, Any] = {"tenant_id": self.spec.tenant}
        for name in ("id", "account", "owner", "created_by"):
            value = getattr(entry, name)
            if value is not None:
                update[{"id": "plan_id", "account": "account_id"}.get(name, name)] = value
        if entry.objective:
            update["objective"] = entry.objective
        if entry.expires_in_days is not None:
            update["expires_at"] = at + timedelta(days=entry.expires_in_days)
        for name in ("accounts", "steps"):
            if getattr(entry, name) is not None:
                self.error(
                    INVALID_VALUE,
                    f"`{name}` is only for plans proposed with `plan_type`",
                    "plans",
                    index,
                    name,
                )
        return [plan.model_copy(update=update)]

    def _propose(self, entry: PlanEntry, index: int, at: datetime) -> list[RevenuePlanV1]:
        from planpolicy.plan import PlanStep, RevenuePlanV1

        assert entry.plan_type is not None
        ptype = self.bundle.plan_type(entry.plan_type)
        if ptype is None:
            known = ", ".join(f"`{n}`" for n in sorted(self.bundle.plan_types))
            self.error(
                UNKNOWN_REFERENCE,
                f"unknown plan type `{entry.plan_type}`",
                "plans",
                index,
                "plan_type",
                hint=f"known: {known}",
            )
            return []
        if (entry.account is None) == (entry.accounts is None):
            self.error(
                INVALID_VALUE,
                "a proposed plan needs `account` or `accounts` (one of them)",
                "plans",
                index,
            )
            return []
        names = entry.steps or list(ptype.step_order)
        for position, name in enumerate(names):
            if name not in ptype.steps:
                self.error(
                    UNKNOWN_REFERENCE,
                    f"`{ptype.name}` has no step `{name}`",
                    "plans",
                    index,
                    "steps",
                    position,
                )
                return []
        for name in entry.parameters:
            if name not in names:
                self.error(
                    UNKNOWN_REFERENCE,
                    f"parameters for `{name}`, which the plan does not have",
                    "plans",
                    index,
                    "parameters",
                    name,
                )
        accounts = [entry.account] if entry.account is not None else list(entry.accounts or [])
        if entry.accounts is not None and entry.id is None:
            prefix = ptype.name.lower().replace("_", "-")
        else:
            prefix = entry.id or ""
        if entry.account is not None and entry.id is None:
            self.error(INVALID_VALUE, "a proposed plan needs an `id`", "plans", index)
            return []
        days = entry.expires_in_days or ptype.max_duration.days
        created_by = entry.created_by or "proposer"
        owner = entry.owner or created_by
        out: list[RevenuePlanV1] = []
        for account in accounts:
            plan_id = prefix if entry.account is not None else f"{prefix}-{account}"
            steps = [
                PlanStep(
                    step_id=step_uuid(self.spec.tenant, plan_id, position, name),
                    action_type=name,
                    human_touch=ptype.steps[name].human_touch
                    or self.bundle.risk.requires_human_touch(ptype.steps[name].risk),
                    parameters=dict(entry.parameters.get(name, {})),
                )
                for position, name in enumerate(names)
            ]
            try:
                out.append(
                    RevenuePlanV1(
                        plan_id=plan_id,
                        tenant_id=self.spec.tenant,
                        account_id=account,
                        plan_type=ptype.name,
                        plan_type_version=ptype.version,
                        objective=entry.objective,
                        steps=steps,
                        owner=owner,
                        created_by=created_by,
                        created_at=at,
                        updated_at=at,
                        expires_at=at + timedelta(days=days),
                    )
                )
            except ValidationError as exc:
                err = exc.errors()[0]
                self.error(
                    INVALID_VALUE,
                    f"plan `{plan_id}`: `{'.'.join(map(str, err['loc']))}`: {err['msg'].lower()}",
                    "plans",
                    index,
                )
        return out

    def _changes(self, accounts: Mapping[str, Any]) -> list[FactChange]:
        changes: list[FactChange] = []
        only = next(iter(accounts)) if len(accounts) == 1 else None
        for index, spec in enumerate(self.spec.timeline):
            at = self.time(spec.at, "timeline", index, "at")
            account = spec.account or only
            if account is None:
                self.error(
                    INVALID_VALUE,
                    "name the `account` (the scenario has several)",
                    "timeline",
                    index,
                )
                continue
            if account not in accounts:
                self.error(
                    UNKNOWN_REFERENCE, f"unknown account `{account}`", "timeline", index, "account"
                )
                continue
            values: list[tuple[tuple[str, ...], Any]] = []
            for key, value in spec.set.items():
                path = tuple(key.split("."))
                if len(path) < 2 or path[0] not in ("account", "signals") or not all(path):
                    self.error(
                        INVALID_VALUE,
                        f"`{key}` is not a fact path: it starts with `account.` or `signals.`",
                        "timeline",
                        index,
                        "set",
                        key,
                    )
                    continue
                values.append((path, value))
            if at is not None and values:
                changes.append(FactChange(at, account, tuple(values), self.at("timeline", index)))
        return changes

    def _person(self, name: str, *path: str | int) -> frozenset[str] | None:
        roles = self.spec.people.get(name)
        if roles is None:
            known = ", ".join(f"`{n}`" for n in sorted(self.spec.people)) or "none"
            self.error(
                UNKNOWN_REFERENCE, f"unknown person `{name}`", *path, hint=f"people: {known}"
            )
            return None
        return frozenset(roles)

    def _actions(
        self, people: Mapping[str, frozenset[str]], plans: Mapping[str, ScenarioPlan]
    ) -> list[HumanAction]:
        actions: list[HumanAction] = []
        for index, entry in enumerate(self.spec.plans):
            if entry.approve is None:
                continue
            roles = self._person(entry.approve.by, "plans", index, "approve", "by")
            created = self.time(entry.at, "plans", index, "at", default=self.start)
            at = self.time(entry.approve.at, "plans", index, "approve", "at", default=created)
            if roles is None or at is None or created is None:
                continue
            if at < created:
                self.error(
                    INVALID_VALUE,
                    "the plan is approved before it is proposed",
                    "plans",
                    index,
                    "approve",
                    "at",
                )
                continue
            for plan_id in self.by_entry.get(index, []):
                actions.append(
                    HumanAction(
                        at,
                        plan_id,
                        "approve",
                        entry.approve.by,
                        roles,
                        None,
                        entry.approve.reason,
                        self.at("plans", index, "approve"),
                    )
                )
        for index, spec in enumerate(self.spec.actions):
            at = self.time(spec.at, "actions", index, "at")
            roles = self._person(spec.by, "actions", index, "by")
            target = plans.get(spec.plan)
            if target is None:
                self.error(
                    UNKNOWN_REFERENCE, f"unknown plan `{spec.plan}`", "actions", index, "plan"
                )
                continue
            if spec.do == "approve_step":
                if spec.step is None:
                    self.error(INVALID_VALUE, "`approve_step` needs the `step`", "actions", index)
                    continue
                if target.plan.step_by_action(spec.step) is None:
                    self.error(
                        UNKNOWN_REFERENCE,
                        f"plan `{spec.plan}` has no step `{spec.step}`",
                        "actions",
                        index,
                        "step",
                    )
                    continue
            elif spec.step is not None:
                self.error(
                    INVALID_VALUE,
                    f"`step` is only for `approve_step`, not `{spec.do}`",
                    "actions",
                    index,
                    "step",
                )
                continue
            if at is not None and roles is not None:
                if at < target.at:
                    self.error(
                        INVALID_VALUE,
                        f"plan `{spec.plan}` is proposed only at `{describe_time(self.start, target.at)}`",
                        "actions",
                        index,
                        "at",
                    )
                    continue
                actions.append(
                    HumanAction(
                        at,
                        spec.plan,
                        spec.do,
                        spec.by,
                        roles,
                        spec.step,
                        spec.reason,
                        self.at("actions", index),
                    )
                )
        return actions

    def _outcome(self, spec: OutcomeSpec, *path: str | int) -> ScriptOutcome | None:
        if spec.outcome == "pending":
            if spec.pending_for is None:
                self.error(INVALID_VALUE, "a `pending` outcome needs `pending_for`", *path)
                return None
            return ScriptOutcome("pending", spec.error, parse_duration(spec.pending_for), spec.then)
        if spec.pending_for is not None:
            self.error(
                INVALID_VALUE,
                f"`pending_for` is only for `pending`, not `{spec.outcome}`",
                *path,
                "pending_for",
            )
            return None
        return ScriptOutcome(spec.outcome, spec.error)

    def _script(self, plans: Mapping[str, ScenarioPlan]) -> list[ScriptRule]:
        actions = {s.action_type for p in plans.values() for s in p.plan.steps}
        rules: list[ScriptRule] = []
        seen: set[tuple[str, int | None, str | None]] = set()
        for index, spec in enumerate(self.spec.executor):
            path: tuple[str | int, ...] = ("executor", index)
            if spec.action not in actions:
                self.error(
                    UNKNOWN_REFERENCE,
                    f"no plan of the scenario has a step `{spec.action}`",
                    *path,
                    "action",
                )
                continue
            if spec.plan is not None and spec.plan not in plans:
                self.error(UNKNOWN_REFERENCE, f"unknown plan `{spec.plan}`", *path, "plan")
                continue
            key = (spec.action, spec.attempt, spec.plan)
            if key in seen:
                self.error(
                    DUPLICATE_ID, "another rule matches the same action, attempt and plan", *path
                )
                continue
            seen.add(key)
            outcome = self._outcome(spec, *path)
            otherwise = None
            if spec.otherwise is not None:
                if spec.probability is None:
                    self.error(
                        INVALID_VALUE, "`otherwise` needs a `probability`", *path, "otherwise"
                    )
                    continue
                otherwise = self._outcome(spec.otherwise, *path, "otherwise")
            elif spec.probability is not None and outcome is not None:
                otherwise = (
                    ScriptOutcome("fail", "scripted failure")
                    if outcome.kind == "succeed"
                    else ScriptOutcome("succeed")
                )
            if outcome is None or (spec.otherwise is not None and otherwise is None):
                continue
            rules.append(
                ScriptRule(
                    spec.action, spec.attempt, spec.plan, outcome, spec.probability, otherwise
                )
            )
        return rules

    def _expectations(self, plans: Mapping[str, ScenarioPlan]) -> list[Expectation]:
        out: list[Expectation] = []
        for index, spec in enumerate(self.spec.expect):
            path: tuple[str | int, ...] = ("expect", index)
            target = plans.get(spec.plan)
            if target is None:
                self.error(UNKNOWN_REFERENCE, f"unknown plan `{spec.plan}`", *path, "plan")
                continue
            kinds = [
                k
                for k, v in (
                    ("end", spec.status),
                    ("step", spec.step),
                    ("ledger", spec.ledger),
                    ("refused", spec.refused),
                )
                if v is not None
            ]
            if len(kinds) != 1:
                self.error(
                    INVALID_VALUE,
                    "an expectation names exactly one of `status`, `step`, `ledger` or `refused`",
                    *path,
                )
                continue
            kind = kinds[0]
            allowed = {
                "end": {"reason", "before", "after"},
                "step": {"runs", "attempts", "step_status", "before", "after"},
                "ledger": {"contains", "count", "before", "after"},
                "refused": {"count", "before", "after"},
            }[kind]
            extra = [
                n
                for n in (
                    "reason",
                    "runs",
                    "attempts",
                    "step_status",
                    "contains",
                    "count",
                    "before",
                    "after",
                )
                if getattr(spec, n) is not None and n not in allowed
            ]
            if extra:
                self.error(
                    INVALID_VALUE,
                    f"`{extra[0]}` does not go with `{ {'end': 'status'}.get(kind, kind) }`",
                    *path,
                    extra[0],
                )
                continue
            if kind == "step":
                if target.plan.step_by_action(spec.step or "") is None:
                    self.error(
                        UNKNOWN_REFERENCE,
                        f"plan `{spec.plan}` has no step `{spec.step}`",
                        *path,
                        "step",
                    )
                    continue
                if spec.runs is None and spec.attempts is None and spec.step_status is None:
                    self.error(
                        INVALID_VALUE,
                        "a step expectation needs `runs`, `attempts` or `step_status`",
                        *path,
                    )
                    continue
            if kind == "ledger" and spec.ledger is not None and spec.ledger not in _LEDGER_EVENTS:
                shown = ", ".join(f"`{e}`" for e in _LEDGER_EVENTS)
                self.error(
                    UNKNOWN_REFERENCE,
                    f"unknown ledger event `{spec.ledger}`",
                    *path,
                    "ledger",
                    hint=f"events: {shown}",
                )
                continue
            before = self.time(spec.before, *path, "before")
            after = self.time(spec.after, *path, "after")
            if (spec.before is not None and before is None) or (
                spec.after is not None and after is None
            ):
                continue
            out.append(
                Expectation(
                    kind=kind,  # type: ignore[arg-type]
                    plan_id=spec.plan,
                    text=_describe_expectation(spec, self.start, before, after),
                    status=spec.status,
                    reason=spec.reason,
                    step=spec.step,
                    runs=spec.runs,
                    attempts=spec.attempts,
                    step_status=spec.step_status,
                    event=spec.ledger,
                    contains=spec.contains,
                    count=spec.count,
                    command=spec.refused,
                    before=before,
                    after=after,
                    location=self.at(*path),
                )
            )
        return out


#: The ledger's event names (orchestrator.ledger.LedgerEvent), kept here so that the
#: engine need not import the orchestrator to check a scenario.
_LEDGER_EVENTS = (
    "created",
    "updated",
    "approved",
    "gate_decision",
    "activated",
    "activation_rejected",
    "step_intent",
    "step_outcome",
    "step_approved",
    "retried",
    "skipped",
    "paused",
    "resumed",
    "completed",
    "aborted",
    "expired",
    "proposal",
    "proposal_rejected",
    "note",
)


def _describe_expectation(
    spec: ExpectSpec, start: datetime, before: datetime | None, after: datetime | None
) -> str:
    when = ""
    if after is not None:
        when += f" at or after {describe_time(start, after)}"
    if before is not None:
        when += f" before {describe_time(start, before)}"
    plan = f"plan `{spec.plan}`"
    if spec.status is not None:
        reason = f" with reason `{spec.reason}`" if spec.reason else ""
        verb = "ends" if spec.status in ("COMPLETED", "ABORTED", "EXPIRED") else "is"
        return f"{plan} {verb} {spec.status}{reason}{when}"
    if spec.step is not None:
        parts = []
        if spec.runs is not None:
            parts.append("runs" if spec.runs else "never runs")
        if spec.attempts is not None:
            parts.append(f"has {spec.attempts} attempt{'s' if spec.attempts != 1 else ''}")
        if spec.step_status is not None:
            parts.append(f"ends {spec.step_status}")
        return f"step `{spec.step}` of {plan} {' and '.join(parts)}{when}"
    if spec.ledger is not None:
        what = f"`{spec.ledger}`" + (f" mentioning `{spec.contains}`" if spec.contains else "")
        if spec.count == 0:
            return f"{plan} never records {what}{when}"
        times = f" exactly {spec.count} time{'s' if spec.count != 1 else ''}" if spec.count else ""
        return f"{plan} records {what}{times}{when}"
    if spec.count == 0:
        return f"`{spec.refused}` on {plan} is never refused{when}"
    times = f" exactly {spec.count} time{'s' if spec.count != 1 else ''}" if spec.count else ""
    return f"`{spec.refused}` on {plan} is refused{times}{when}"


def day_number(start: datetime, at: datetime) -> float:
    """Days (fractional) from ``start`` to ``at``."""
    return (at - start).total_seconds() / 86400


def ceil_to_grid(at: datetime, start: datetime, tick: timedelta) -> datetime:
    """The first tick time ``start + k * tick`` (k >= 0) at or after ``at``."""
    if at <= start:
        return start
    return start - ((start - at) // tick) * tick
