"""Reading and checking scenario files: located diagnostics, then a resolved :class:`Scenario`.

The file is loaded with the hardened policy loader and checked against the
generated JSON Schema (``schemas/scenario.v1.json``) with the same messages
as policy files; the scenario's own rules (references, times inside the
horizon, combinations of fields) come next, each problem located at
``file:line:column``. The codes are listed in :mod:`planpolicy.scenario`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Location, Severity
from planpolicy.loader import SourceDocument, load_file
from planpolicy.scenario import (
    BAD_FILE,
    DUPLICATE_ID,
    FAILS_CLOSED,
    INVALID_VALUE,
    OUT_OF_RANGE,
    SCENARIO_KIND,
    UNKNOWN_REFERENCE,
    DayTime,
    Expectation,
    ExpectSpec,
    FactChange,
    HumanAction,
    OutcomeSpec,
    PlanEntry,
    Scenario,
    ScenarioError,
    ScenarioFile,
    ScenarioPlan,
    ScriptOutcome,
    ScriptRule,
    describe_time,
    parse_duration,
    parse_instant,
    resolve_time,
    step_uuid,
)

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from planpolicy.model import PolicyBundle
    from planpolicy.plan import RevenuePlanV1

__all__ = ["load", "read_scenario_file"]


def _suggest(name: str, known: Iterable[str]) -> str:
    """``did you mean `x`?`` or the list of what is known."""
    options = sorted(known)
    close = difflib.get_close_matches(name, options, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    shown = ", ".join(f"`{o}`" for o in options[:20]) + (", ..." if len(options) > 20 else "")
    return f"known: {shown}" if options else "none are defined"


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


def load(path: str | Path, bundle: PolicyBundle) -> Scenario:
    """See :func:`planpolicy.scenario.load_scenario`."""
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
        """Location of ``spec.<path>`` in the file."""
        return self.doc.location(("spec", *path))

    def error(self, code: str, message: str, *path: str | int, hint: str | None = None) -> None:
        """Report an error at ``spec.<path>``."""
        self.sink.error(code, message, self.at(*path), hint=hint)

    def unknown(self, message: str, name: str, known: Iterable[str], *path: str | int) -> None:
        """An unknown reference, with a "did you mean" when something is close."""
        self.error(UNKNOWN_REFERENCE, message, *path, hint=_suggest(name, known))

    # -- entry point --------------------------------------------------------------

    def resolve(self) -> Scenario | None:
        """The resolved scenario (problems go to the sink; ``None`` when it cannot be built)."""
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
            self.unknown(
                f"unknown plan type `{entry.plan_type}`",
                entry.plan_type,
                self.bundle.plan_types,
                "plans",
                index,
                "plan_type",
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
                self.unknown(
                    f"`{ptype.name}` has no step `{name}`",
                    name,
                    ptype.steps,
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
                self.unknown(
                    f"unknown account `{account}`", account, accounts, "timeline", index, "account"
                )
                continue
            values: list[tuple[tuple[str, ...], Any]] = []
            for key, value in spec.set.items():
                path = tuple(key.split("."))
                if len(path) < 2 or path[0] not in ("account", "signals") or not all(path):
                    self.sink.error(
                        INVALID_VALUE,
                        f"`{key}` is not a fact path: it starts with `account.` or `signals.`",
                        self.doc.key_location(("spec", "timeline", index, "set", key)),
                    )
                    continue
                values.append((path, value))
            if at is not None and values:
                changes.append(FactChange(at, account, tuple(values), self.at("timeline", index)))
        return changes

    def _person(self, name: str, *path: str | int) -> frozenset[str] | None:
        roles = self.spec.people.get(name)
        if roles is None:
            self.unknown(f"unknown person `{name}`", name, self.spec.people, *path)
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
                self.unknown(
                    f"unknown plan `{spec.plan}`", spec.plan, plans, "actions", index, "plan"
                )
                continue
            if spec.do == "approve_step":
                if spec.step is None:
                    self.error(INVALID_VALUE, "`approve_step` needs the `step`", "actions", index)
                    continue
                if target.plan.step_by_action(spec.step) is None:
                    self.unknown(
                        f"plan `{spec.plan}` has no step `{spec.step}`",
                        spec.step,
                        [s.action_type for s in target.plan.steps],
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
                self.unknown(
                    f"no plan of the scenario has a step `{spec.action}`",
                    spec.action,
                    actions,
                    *path,
                    "action",
                )
                continue
            if spec.plan is not None and spec.plan not in plans:
                self.unknown(f"unknown plan `{spec.plan}`", spec.plan, plans, *path, "plan")
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
                self.unknown(f"unknown plan `{spec.plan}`", spec.plan, plans, *path, "plan")
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
                    self.unknown(
                        f"plan `{spec.plan}` has no step `{spec.step}`",
                        spec.step or "",
                        [s.action_type for s in target.plan.steps],
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
                self.unknown(
                    f"unknown ledger event `{spec.ledger}`",
                    spec.ledger,
                    _LEDGER_EVENTS,
                    *path,
                    "ledger",
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
