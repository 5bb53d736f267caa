"""Run policy test files against a compiled bundle.

Each case ends ``pass``, ``fail`` (the policy decided otherwise than
expected: both are shown) or ``error`` (the case itself is wrong). A case
that names something the bundle does not know — a plan type, a step, a reason
code, a trigger, a state or a role — is an error, never a pass: a typo must
not make a test pass by accident. Naming an unknown plan type or step is
allowed only in a gate case that expects the reason reporting it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from planpolicy.authority import Actor
from planpolicy.diagnostics import Diagnostic, Location
from planpolicy.facts import Facts, facts_from_document
from planpolicy.gate import Decision, Gate
from planpolicy.inputs import InputError, plan_from_document, read_document
from planpolicy.lifecycle import (
    InvalidTransition,
    TransitionOutcome,
    decide_transition,
    machine_for,
)
from planpolicy.loader import SourceDocument
from planpolicy.model import PolicyBundle
from planpolicy.plan import RevenuePlanV1
from planpolicy.reasons import REASON_CODES, Reason
from planpolicy.testing.spec import (
    GateCase,
    GateExpectation,
    PolicyTestFile,
    ReasonExpectation,
    TransitionCase,
    TransitionExpectation,
)

__all__ = ["CaseResult", "SuiteResult", "TestRun", "discover_tests", "merge_patch", "run_tests"]

Status = Literal["pass", "fail", "error"]
JsonPath = tuple[str | int, ...]

#: Code of a problem in the shape of a test file itself.
TEST_FILE_INVALID = "PP601"


@dataclass(frozen=True)
class CaseResult:
    """The result of one case."""

    name: str
    status: Status
    message: str = ""
    expected: str = ""
    actual: str = ""
    location: Location | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class SuiteResult:
    """The results of one test file."""

    file: str
    name: str
    cases: tuple[CaseResult, ...]

    def count(self, status: Status) -> int:
        return sum(1 for c in self.cases if c.status == status)


@dataclass(frozen=True)
class TestRun:
    """All suites of a run."""

    suites: tuple[SuiteResult, ...] = field(default_factory=tuple)

    def count(self, status: Status) -> int:
        return sum(s.count(status) for s in self.suites)

    @property
    def ok(self) -> bool:
        return bool(self.suites) and self.count("fail") == 0 and self.count("error") == 0


class _CaseError(Exception):
    """The case is wrong; ``location`` points into the test file."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.location = location


class _CaseFailed(Exception):
    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


def discover_tests(paths: Sequence[str | Path]) -> list[Path]:
    """YAML files given, or found (sorted) under the directories given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _data_path(data: Any, loc: Sequence[Any]) -> JsonPath:
    """The part of a pydantic error location that exists in ``data`` (drops union tags)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_list or (isinstance(current, Mapping) and part in current)):
            continue
        current = current[part]
        path.append(part)
    return tuple(path)


def _expected_codes(items: Sequence[str | ReasonExpectation] | None) -> list[ReasonExpectation]:
    return [
        i if isinstance(i, ReasonExpectation) else ReasonExpectation(code=i) for i in items or []
    ]


def _codes_text(codes: Sequence[str] | frozenset[str]) -> str:
    return "{" + ", ".join(sorted(set(codes))) + "}"


class _Suite:
    """One loaded test file and the bundle it runs against."""

    def __init__(self, source: SourceDocument, spec: PolicyTestFile, bundle: PolicyBundle) -> None:
        self.source = source
        self.spec = spec
        self.bundle = bundle
        self.gate = Gate(bundle)
        self.roles = frozenset(r for g in bundle.authority.grants for r in g.roles)

    def at(self, *path: str | int) -> Location:
        return self.source.location(path)

    def run(self) -> SuiteResult:
        results: list[CaseResult] = []
        seen: set[str] = set()
        for index, case in enumerate(self.spec.cases):
            start = time.perf_counter()
            where = self.at("cases", index, "name")
            try:
                if case.name in seen:
                    raise _CaseError(f"duplicate case name `{case.name}`", where)
                seen.add(case.name)
                self.run_case(index, case)
                result = CaseResult(case.name, "pass", location=where)
            except _CaseFailed as failed:
                result = CaseResult(
                    case.name, "fail", str(failed), failed.expected, failed.actual, where
                )
            except _CaseError as error:
                result = CaseResult(
                    case.name, "error", str(error), location=error.location or where
                )
            results.append(
                CaseResult(
                    result.name,
                    result.status,
                    result.message,
                    result.expected,
                    result.actual,
                    result.location,
                    time.perf_counter() - start,
                )
            )
        return SuiteResult(self.source.path, self.spec.metadata.name, tuple(results))

    # --- inputs -------------------------------------------------------------

    def _resolve(
        self, index: int, kind: str, ref: str | dict[str, Any], patch: dict[str, Any]
    ) -> tuple[Any, JsonPath]:
        named: Mapping[str, dict[str, Any]] = (
            self.spec.plans if kind == "plan" else self.spec.contexts
        )
        if isinstance(ref, str):
            if ref not in named:
                known = ", ".join(f"`{n}`" for n in sorted(named)) or "none"
                message = f"unknown {kind} `{ref}` (known: {known})"
                raise _CaseError(message, self.at("cases", index, kind))
            base: JsonPath = (f"{kind}s", ref)
            data: Any = named[ref]
        else:
            base, data = ("cases", index, kind), ref
        if patch:
            return merge_patch(data, patch), ("cases", index, f"{kind}_patch")
        return data, base

    def plan_of(self, index: int, case: GateCase | TransitionCase) -> RevenuePlanV1:
        data, base = self._resolve(index, "plan", case.plan, case.plan_patch)
        try:
            return plan_from_document(data, self.source, base)
        except InputError as exc:
            first = exc.diagnostics[0]
            raise _CaseError(f"invalid plan: {first.message}", first.location) from None

    def facts_of(self, index: int, case: GateCase | TransitionCase) -> Facts | None:
        if case.context is None:
            return None
        data, base = self._resolve(index, "context", case.context, case.context_patch)
        try:
            return facts_from_document(data, self.source, base)
        except InputError as exc:
            first = exc.diagnostics[0]
            raise _CaseError(f"invalid context: {first.message}", first.location) from None

    # --- names the bundle must know -------------------------------------------

    def check_names(
        self, index: int, plan: RevenuePlanV1, expected: list[ReasonExpectation], gate_case: bool
    ) -> None:
        codes = {e.code for e in expected}
        for i, item in enumerate(expected):
            if item.code not in REASON_CODES:
                raise _CaseError(
                    f"unknown reason code `{item.code}`",
                    self.at("cases", index, "expect", "reasons", i),
                )
        ptype = self.bundle.plan_type(plan.plan_type)
        if ptype is None:
            if not (gate_case and "PLAN_TYPE_UNKNOWN" in codes):
                raise _CaseError(
                    f"unknown plan type `{plan.plan_type}`", self.at("cases", index, "plan")
                )
            return
        for step in plan.steps:
            if step.action_type not in ptype.steps and not (
                gate_case and "STEP_TYPE_NOT_ALLOWED" in codes
            ):
                raise _CaseError(
                    f"unknown step `{step.action_type}` for plan type `{ptype.name}`",
                    self.at("cases", index, "plan"),
                )
        for i, item in enumerate(expected):
            if item.step is not None and item.step not in ptype.steps:
                where = self.at("cases", index, "expect", "reasons", i, "step")
                raise _CaseError(f"unknown step `{item.step}` for plan type `{ptype.name}`", where)

    # --- cases ----------------------------------------------------------------

    def run_case(self, index: int, case: GateCase | TransitionCase) -> None:
        plan = self.plan_of(index, case)
        facts = self.facts_of(index, case)
        if isinstance(case, TransitionCase):
            expected = _expected_codes(case.expect.reasons)
            self.check_names(index, plan, expected, gate_case=False)
            self.transition_case(index, case, plan, facts, expected)
        else:
            expected = _expected_codes(case.expect.reasons)
            self.check_names(index, plan, expected, gate_case=True)
            if facts is None:
                raise _CaseError("a gate case needs a `context`", self.at("cases", index))
            if not case.expect.can_activate and not expected:
                where = self.at("cases", index, "expect")
                raise _CaseError("a case that expects a denial must list its reason codes", where)
            decision = self.gate.evaluate(plan, facts)
            _compare_gate(case.expect, expected, decision, plan)

    def transition_case(
        self,
        index: int,
        case: TransitionCase,
        plan: RevenuePlanV1,
        facts: Facts | None,
        expected: list[ReasonExpectation],
    ) -> None:
        machine = machine_for(self.bundle, plan.plan_type)
        assert machine is not None  # check_names refused unknown plan types
        lifecycle = machine.lifecycle
        spec = case.transition
        where = self.at("cases", index, "transition")
        if spec.trigger not in lifecycle.triggers:
            raise _CaseError(
                f"unknown trigger `{spec.trigger}` in lifecycle `{lifecycle.name}`", where
            )
        for state in (plan.status, case.expect.to):
            if state is not None and state not in lifecycle.states:
                raise _CaseError(f"unknown state `{state}` in lifecycle `{lifecycle.name}`", where)
        actor = None
        if spec.actor is not None:
            unknown = sorted(set(spec.actor.roles) - self.roles)
            if unknown:
                raise _CaseError(
                    f"unknown role `{unknown[0]}`: no grant of the AuthorityPolicy names it", where
                )
            actor = Actor(spec.actor.user_id, frozenset(spec.actor.roles), spec.actor.human)
        try:
            guards = machine.guards(plan.status, spec.trigger)
        except InvalidTransition:
            guards = frozenset()
        if "authority" in guards and actor is None:
            raise _CaseError(
                f"`{spec.trigger}` is guarded by `authority`: give the case an `actor`", where
            )
        if "gate" in guards and facts is None:
            raise _CaseError(
                f"`{spec.trigger}` is guarded by the `gate`: give the case a `context`", where
            )
        outcome = decide_transition(
            self.bundle, plan, spec.trigger, actor=actor, facts=facts, gate=self.gate
        )
        _compare_transition(case.expect, expected, outcome, plan)


def _missing_reasons(
    expected: list[ReasonExpectation], reasons: Sequence[Reason], plan: RevenuePlanV1
) -> list[str]:
    steps = {s.step_id: s.action_type for s in plan.steps}
    missing = []
    for item in expected:
        if item.step is None and item.rule is None:
            continue
        found = any(
            r.code == item.code
            and (item.step is None or (r.step_id is not None and steps.get(r.step_id) == item.step))
            and (item.rule is None or (r.rule is not None and r.rule.rule == item.rule))
            for r in reasons
        )
        if not found:
            about = f" at step `{item.step}`" if item.step else ""
            about += f" from rule `{item.rule}`" if item.rule else ""
            missing.append(f"`{item.code}`{about}")
    return missing


def _reasons_text(reasons: Sequence[Reason]) -> str:
    return _codes_text([r.code for r in reasons]) + "".join(
        f"\n  - {r.code}: {r.message}" for r in reasons
    )


def _compare_gate(
    expect: GateExpectation,
    expected: list[ReasonExpectation],
    decision: Decision,
    plan: RevenuePlanV1,
) -> None:
    want_codes = frozenset(e.code for e in expected)
    want = f"can_activate={str(expect.can_activate).lower()} reasons={_codes_text(want_codes)}"
    got = f"can_activate={str(decision.can_activate).lower()} reasons={_reasons_text(decision.reasons)}"
    if decision.can_activate != expect.can_activate:
        raise _CaseFailed("the gate decided otherwise", want, got)
    if decision.codes != want_codes:
        raise _CaseFailed("the gate gave other reasons", want, got)
    missing = _missing_reasons(expected, decision.reasons, plan)
    if missing:
        raise _CaseFailed("a reason is not where it was expected: " + ", ".join(missing), want, got)
    if expect.plan_risk is not None and expect.plan_risk != decision.plan_risk:
        raise _CaseFailed(
            "the plan risk differs",
            f"plan_risk={expect.plan_risk}",
            f"plan_risk={decision.plan_risk}",
        )


def _outcome_text(outcome: TransitionOutcome) -> str:
    if outcome.allowed:
        return f"allowed=true to={outcome.dest}"
    text = f"allowed=false error={outcome.error}"
    if outcome.guard:
        text += f" guard={outcome.guard}"
    return text + f" reasons={_reasons_text(outcome.reasons)}\n  ({outcome.message})"


def _compare_transition(
    expect: TransitionExpectation,
    expected: list[ReasonExpectation],
    outcome: TransitionOutcome,
    plan: RevenuePlanV1,
) -> None:
    parts = [f"allowed={str(expect.allowed).lower()}"]
    for name in ("to", "error", "guard"):
        value = getattr(expect, name)
        if value is not None:
            parts.append(f"{name}={value}")
    if expect.reasons is not None:
        parts.append(f"reasons={_codes_text([e.code for e in expected])}")
    want, got = " ".join(parts), _outcome_text(outcome)
    if outcome.allowed != expect.allowed:
        raise _CaseFailed(
            "the transition was " + ("allowed" if outcome.allowed else "refused"), want, got
        )
    checks = [
        (expect.to, outcome.dest, "it leads to another state"),
        (expect.error, outcome.error, "it was refused for another reason"),
        (expect.guard, outcome.guard, "another guard refused it"),
    ]
    for wanted, actual, message in checks:
        if wanted is not None and wanted != actual:
            raise _CaseFailed(message, want, got)
    if expect.reasons is not None:
        codes = frozenset(r.code for r in outcome.reasons)
        if codes != frozenset(e.code for e in expected):
            raise _CaseFailed("the refusal gave other reasons", want, got)
        missing = _missing_reasons(expected, outcome.reasons, plan)
        if missing:
            raise _CaseFailed(
                "a reason is not where it was expected: " + ", ".join(missing), want, got
            )


def _file_error(path: str, diagnostics: Sequence[Diagnostic]) -> SuiteResult:
    first = diagnostics[0] if diagnostics else Diagnostic(TEST_FILE_INVALID, "invalid test file")
    more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
    case = CaseResult(
        "(test file)",
        "error",
        f"{first.message} [{first.code}]{more}",
        location=first.location or Location(path),
    )
    return SuiteResult(path, Path(path).stem, (case,))


def load_suite(path: Path, bundle: PolicyBundle) -> _Suite | SuiteResult:
    """The suite of ``path``, or a result holding the file's problems."""
    try:
        source = read_document(path, "policy test")
    except InputError as exc:
        return _file_error(str(path), exc.diagnostics)
    try:
        spec = PolicyTestFile.model_validate(source.data)
    except ValidationError as exc:
        diagnostics = [
            Diagnostic(
                TEST_FILE_INVALID,
                f"`{'.'.join(map(str, _data_path(source.data, err['loc']))) or '(root)'}`: "
                f"{err['msg'][:1].lower()}{err['msg'][1:]}",
                source.location(_data_path(source.data, err["loc"])),
            )
            for err in exc.errors()
        ]
        return _file_error(str(path), diagnostics)
    return _Suite(source, spec, bundle)


def run_tests(paths: Sequence[str | Path], bundle: PolicyBundle) -> TestRun:
    """Run every test file found in ``paths`` against ``bundle``."""
    suites = []
    for path in discover_tests(paths):
        loaded = load_suite(path, bundle)
        suites.append(loaded if isinstance(loaded, SuiteResult) else loaded.run())
    return TestRun(tuple(suites))
