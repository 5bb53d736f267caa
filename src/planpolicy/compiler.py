"""Compile policy files into a :class:`~planpolicy.model.PolicyBundle`.

The compiler is an ordered list of named stages run by a short loop
(:data:`STAGES`). Each stage reads what earlier stages produced from a
:class:`CompileState` and reports problems to its diagnostic sink; stages keep
going after errors so one run reports every problem. Adding a check means
adding a stage (or a line in one).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from planpolicy.cel import CelEnvironment, CompiledExpr, save_compile_cache, types_from_schema
from planpolicy.celtypes import DYN, TIMESTAMP, ListType, MapType, ObjectType
from planpolicy.context import base_context_schema, merge_extension, normalize_for_types
from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Location, Severity
from planpolicy.loader import LoadLimits, SourceDocument, SourceFile, discover
from planpolicy.model import (
    AuthorityRules,
    CompiledCondition,
    CompiledLifecycle,
    CompiledPlanType,
    CompiledProposal,
    CompiledStep,
    CompiledTemplate,
    ConflictRule,
    DocumentInfo,
    Grant,
    LazyRuleRef,
    PolicyBundle,
    RetrySpec,
    RiskOrder,
    RuleRef,
    TransitionSpec,
)
from planpolicy.readahead import read_files
from planpolicy.schema import TypedDocument, validate_document

if TYPE_CHECKING:
    # The shapes documents are read as (they are Records at run time, see
    # planpolicy.docrecords); importing them would build the pydantic models.
    from planpolicy.documents import (
        AuthorityPolicy,
        Condition,
        ConflictPolicy,
        ContextExtension,
        Lifecycle,
        PlanType,
        RiskPolicy,
    )

__all__ = [
    "STAGES",
    "BundleError",
    "CompileResult",
    "CompileState",
    "compile_bundle",
    "load_bundle",
]

SINGLETON_KINDS = ("RiskPolicy", "AuthorityPolicy", "ConflictPolicy")


class BundleError(Exception):
    """The policy files do not compile; ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        errors = [d for d in diagnostics if d.is_error]
        first = str(errors[0]) if errors else "no policy documents"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"policy bundle does not compile: {first}{more}")
        self.diagnostics = tuple(diagnostics)


@dataclass
class CompileState:
    """What the stages share while compiling one set of files."""

    paths: Sequence[str | Path]
    sink: DiagnosticSink
    limits: LoadLimits = field(default_factory=LoadLimits)
    jobs: int = 1
    check_jobs: int = 1
    files: list[SourceFile] = field(default_factory=list)
    documents: list[TypedDocument] = field(default_factory=list)
    declared_kinds: set[str] = field(default_factory=set)
    by_kind: dict[str, dict[str, TypedDocument]] = field(default_factory=lambda: defaultdict(dict))
    context_schema: dict[str, Any] = field(default_factory=dict)
    cel: CelEnvironment | None = None
    risk: RiskOrder | None = None
    authority: AuthorityRules | None = None
    conflict: ConflictRule | None = None
    lifecycles: dict[str, CompiledLifecycle] = field(default_factory=dict)
    plan_types: dict[str, CompiledPlanType] = field(default_factory=dict)
    bundle: PolicyBundle | None = None


@dataclass(frozen=True)
class CompileResult:
    """The bundle (``None`` when any error was found) and every diagnostic."""

    bundle: PolicyBundle | None
    diagnostics: tuple[Diagnostic, ...]
    documents: tuple[TypedDocument, ...]
    plan_types: Mapping[str, CompiledPlanType]
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.bundle is not None


# --- helpers ---------------------------------------------------------------


def _ref(doc: TypedDocument, rule: str, path: Sequence[str | int] = ()) -> RuleRef:
    return LazyRuleRef(doc.kind, doc.name, doc.version, rule, partial(doc.source.location, path))


def _compile_cel(
    state: CompileState,
    doc: TypedDocument,
    path: tuple[str | int, ...],
    source: str,
    *,
    expect_bool: bool = True,
    start: tuple[int, int] = (1, 1),
) -> CompiledExpr | None:
    """Compile ``source`` found at ``path``; ``start`` is its (line, column) inside that string."""
    assert state.cel is not None
    result = state.cel.compile(source, expect_bool=expect_bool)
    for problem in result.problems:
        severity = Severity.WARNING if problem.code == "PP407" else Severity.ERROR
        line = problem.line + start[0] - 1
        column = problem.column + (start[1] - 1 if problem.line == 1 else 0)
        state.sink.add(
            Diagnostic(
                problem.code,
                problem.message,
                doc.source.expr_location(path, line, column),
                severity,
                problem.hint,
            )
        )
    return result.expr


def _condition(
    state: CompileState, doc: TypedDocument, path: tuple[str | int, ...], cond: Condition
) -> CompiledCondition | None:
    expr = _compile_cel(state, doc, (*path, "expr"), cond.expr)
    if expr is None:
        return None
    return CompiledCondition(cond.id, cond.description, expr, _ref(doc, cond.id, (*path, "expr")))


def _unknown(
    state: CompileState, code: str, what: str, value: str, known: Sequence[str], loc: Location
) -> None:
    import difflib

    close = difflib.get_close_matches(value, list(known), n=1)
    hint = (
        f"did you mean `{close[0]}`?"
        if close
        else ("known: " + ", ".join(f"`{k}`" for k in known) if known else None)
    )
    state.sink.error(code, f"unknown {what} `{value}`", loc, hint=hint)


# --- stages ----------------------------------------------------------------


def stage_load(state: CompileState) -> None:
    """Discover and read YAML files, keeping node positions (in workers for many files)."""
    try:
        paths = discover(state.paths)
    except FileNotFoundError as exc:
        state.sink.error("PP108", f"no such file or directory `{exc.filename or exc}`")
        return
    for loaded, diagnostics in read_files(paths, state.limits, state.jobs):
        state.sink.extend(diagnostics)
        if loaded is not None:
            state.files.append(loaded)


def stage_schema(state: CompileState) -> None:
    """Validate every document against its kind's JSON Schema."""
    for file in state.files:
        for source in file.documents:
            if isinstance(source.data, dict) and isinstance(source.data.get("kind"), str):
                state.declared_kinds.add(source.data["kind"])
            typed = validate_document(source, state.sink)
            if typed is not None:
                state.documents.append(typed)


def stage_index(state: CompileState) -> None:
    """Names are unique per kind; singleton kinds appear exactly once."""
    for doc in state.documents:
        seen = state.by_kind[doc.kind].get(doc.name)
        if seen is not None:
            state.sink.error(
                "PP301",
                f"duplicate {doc.kind} `{doc.name}`",
                doc.source.location(("metadata", "name")),
                hint=f"first defined at {seen.source.location(('metadata', 'name'))}",
            )
            continue
        state.by_kind[doc.kind][doc.name] = doc
    if not state.documents:
        return
    for kind in SINGLETON_KINDS:
        found = list(state.by_kind[kind].values())
        if not found and kind not in state.declared_kinds:  # else: already reported as invalid
            state.sink.error("PP306", f"the bundle has no {kind} document")
        for extra in found[1:]:
            state.sink.error(
                "PP307",
                f"the bundle may hold one {kind}, found another: `{extra.name}`",
                extra.source.location(("metadata", "name")),
            )
    if not state.by_kind["PlanType"] and "PlanType" not in state.declared_kinds:
        state.sink.error("PP306", "the bundle has no PlanType document")


def stage_context(state: CompileState) -> None:
    """Merge context extensions into the base context and build the CEL environment."""
    schema = base_context_schema()
    for doc in state.by_kind["ContextExtension"].values():
        assert doc.kind == "ContextExtension"
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        for root, fragment in cast("ContextExtension", doc.model).spec.properties.items():
            try:
                Draft202012Validator.check_schema(fragment)
            except SchemaError as exc:
                state.sink.error(
                    "PP308",
                    f"context extension for `{root}` is not a valid JSON Schema: {exc.message}",
                    doc.source.location(("spec", "properties", root, *exc.path)),
                )
                continue
        schema = merge_extension(schema, cast("ContextExtension", doc.model).spec.properties)
    state.context_schema = schema
    state.cel = CelEnvironment(types_from_schema(normalize_for_types(schema)))


def stage_risk(state: CompileState) -> None:
    """Risk levels are unique; the human-touch threshold is one of them."""
    for doc in list(state.by_kind["RiskPolicy"].values())[:1]:
        assert doc.kind == "RiskPolicy"
        spec = cast("RiskPolicy", doc.model).spec
        names: list[str] = []
        for i, level in enumerate(spec.levels):
            if level.name in names:
                state.sink.error(
                    "PP301",
                    f"duplicate risk level `{level.name}`",
                    doc.source.location(("spec", "levels", i, "name")),
                )
            names.append(level.name)
        if spec.human_touch_from not in names:
            _unknown(
                state,
                "PP302",
                "risk level",
                spec.human_touch_from,
                names,
                doc.source.location(("spec", "humanTouchFrom")),
            )
            return
        state.risk = RiskOrder(
            tuple(names),
            spec.human_touch_from,
            _ref(doc, "humanTouchFrom", ("spec", "humanTouchFrom")),
        )


def _risk_names(state: CompileState) -> tuple[str, ...]:
    return state.risk.levels if state.risk else ()


def stage_authority(state: CompileState) -> None:
    """Grants name known risk levels and known lifecycle actions."""
    for doc in list(state.by_kind["AuthorityPolicy"].values())[:1]:
        assert doc.kind == "AuthorityPolicy"
        spec = cast("AuthorityPolicy", doc.model).spec
        for i, grant in enumerate(spec.grants):
            if (
                grant.max_risk is not None
                and state.risk
                and grant.max_risk not in state.risk.levels
            ):
                _unknown(
                    state,
                    "PP302",
                    "risk level",
                    grant.max_risk,
                    _risk_names(state),
                    doc.source.location(("spec", "grants", i, "maxRisk")),
                )
        state.authority = AuthorityRules(
            tuple(Grant(g.action, frozenset(g.roles), g.max_risk) for g in spec.grants),
            frozenset(spec.owner_may),
            spec.proposer_may_approve,
            _ref(doc, "grants", ("spec", "grants")),
        )


def stage_conflict(state: CompileState) -> None:
    """The conflict scope always includes the tenant."""
    for doc in list(state.by_kind["ConflictPolicy"].values())[:1]:
        assert doc.kind == "ConflictPolicy"
        spec = cast("ConflictPolicy", doc.model).spec
        if "tenant_id" not in spec.scope:
            state.sink.error(
                "PP309",
                "the conflict scope must include `tenant_id`: tenants never conflict with each other",
                doc.source.location(("spec", "scope")),
            )
        state.conflict = ConflictRule(
            tuple(dict.fromkeys(["tenant_id", *spec.scope])),
            frozenset(spec.occupying_states),
            _ref(doc, "scope", ("spec", "scope")),
        )


def stage_lifecycles(state: CompileState) -> None:
    """States exist, every state is reachable, terminal states are final."""
    for doc in state.by_kind["Lifecycle"].values():
        assert doc.kind == "Lifecycle"
        spec = cast("Lifecycle", doc.model).spec
        src = doc.source
        ok = True
        names: list[str] = []
        for i, st in enumerate(spec.states):
            if st.name in names:
                state.sink.error(
                    "PP301",
                    f"duplicate state `{st.name}`",
                    src.location(("spec", "states", i, "name")),
                )
                ok = False
            names.append(st.name)
        if spec.initial not in names:
            _unknown(
                state, "PP302", "state", spec.initial, names, src.location(("spec", "initial"))
            )
            ok = False
        for i, term in enumerate(spec.terminal):
            if term not in names:
                _unknown(
                    state, "PP302", "state", term, names, src.location(("spec", "terminal", i))
                )
                ok = False
        edges: dict[str, set[str]] = defaultdict(set)
        seen_pairs: dict[tuple[str, str], int] = {}
        for i, tr in enumerate(spec.transitions):
            base = ("spec", "transitions", i)
            for j, source in enumerate(tr.source):
                if source not in names:
                    _unknown(
                        state, "PP302", "state", source, names, src.location((*base, "from", j))
                    )
                    ok = False
                if source in spec.terminal:
                    state.sink.error(
                        "PP305",
                        f"terminal state `{source}` has an outgoing transition `{tr.trigger}`",
                        src.location((*base, "from", j)),
                        hint="a plan never leaves COMPLETED, ABORTED or EXPIRED-like states",
                    )
                    ok = False
                key = (tr.trigger, source)
                if key in seen_pairs:
                    state.sink.error(
                        "PP301",
                        f"trigger `{tr.trigger}` is defined twice from state `{source}`",
                        src.location((*base, "trigger")),
                    )
                    ok = False
                seen_pairs[key] = i
                edges[source].add(tr.dest)
            if tr.dest not in names:
                _unknown(state, "PP302", "state", tr.dest, names, src.location((*base, "to")))
                ok = False
        reachable = {spec.initial}
        frontier = [spec.initial]
        while frontier:
            for nxt in edges[frontier.pop()]:
                if nxt not in reachable:
                    reachable.add(nxt)
                    frontier.append(nxt)
        for i, name in enumerate(names):
            if name not in reachable:
                state.sink.error(
                    "PP304",
                    f"state `{name}` is unreachable from the initial state `{spec.initial}`",
                    src.location(("spec", "states", i, "name")),
                )
                ok = False
        if ok:
            state.lifecycles[doc.name] = CompiledLifecycle(
                name=doc.name,
                version=doc.version,
                states=tuple(names),
                initial=spec.initial,
                terminal=frozenset(spec.terminal),
                transitions=tuple(
                    TransitionSpec(t.trigger, tuple(t.source), t.dest, frozenset(t.guards))
                    for t in spec.transitions
                ),
                max_plan_duration=timedelta(days=spec.max_plan_duration_days),
                ref=_ref(doc, "transitions", ("spec", "transitions")),
            )


def _topological(
    state: CompileState, doc: TypedDocument, steps: dict[str, tuple[int, tuple[str, ...]]]
) -> tuple[str, ...] | None:
    """Order steps so each comes after its `after` list; report cycles."""
    order: list[str] = []
    marks: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, trail: list[str]) -> bool:
        mark = marks.get(name)
        if mark == 2:
            return True
        if mark == 1:
            cycle = [*trail[trail.index(name) :], name]
            index = steps[name][0]
            state.sink.error(
                "PP303",
                "step ordering has a cycle: " + " -> ".join(f"`{c}`" for c in cycle),
                doc.source.location(("spec", "steps", index, "after")),
            )
            return False
        marks[name] = 1
        for dep in steps[name][1]:
            if dep in steps and not visit(dep, [*trail, name]):
                return False
        marks[name] = 2
        order.append(name)
        return True

    for name in steps:
        if not visit(name, []):
            return None
    return tuple(order)


def _plan_type_expressions(doc: TypedDocument) -> Iterator[tuple[str, bool]]:
    """The (source, expect_bool) of a plan type's expressions (not its templates)."""
    spec = cast("PlanType", doc.model).spec
    for cond in [*spec.eligibility, *spec.objective.conditions]:
        yield cond.expr, True
    for step in spec.steps:
        if step.when is not None:
            yield step.when, True
        if step.timing.not_before is not None:
            yield step.timing.not_before, False
    if spec.proposal is not None:
        for cond in spec.proposal.when:
            yield cond.expr, True
        for source in spec.proposal.include_steps.values():
            yield source, True


def stage_expressions(state: CompileState) -> None:
    """With ``check_jobs`` > 1, check many new expressions in two processes at once."""
    if state.check_jobs < 2 or state.cel is None:
        return
    from planpolicy.celahead import check_ahead

    check_ahead(
        state.cel,
        (
            item
            for doc in state.by_kind["PlanType"].values()
            for item in _plan_type_expressions(doc)
        ),
    )


def stage_plan_types(state: CompileState) -> None:
    """Resolve references, check ordering and compile every CEL expression."""
    for doc in state.by_kind["PlanType"].values():
        _compile_plan_type(state, doc)


def _compile_plan_type(state: CompileState, doc: TypedDocument) -> None:
    assert doc.kind == "PlanType"
    spec = cast("PlanType", doc.model).spec
    src = doc.source
    ok = True
    lifecycle = state.lifecycles.get(spec.lifecycle)
    if spec.lifecycle not in state.by_kind["Lifecycle"]:
        _unknown(
            state,
            "PP302",
            "lifecycle",
            spec.lifecycle,
            list(state.by_kind["Lifecycle"]),
            src.location(("spec", "lifecycle")),
        )
        ok = False
    names = [s.action_type for s in spec.steps]
    ordering: dict[str, tuple[int, tuple[str, ...]]] = {}
    compiled_steps: dict[str, CompiledStep] = {}
    for i, step in enumerate(spec.steps):
        base: tuple[str | int, ...] = ("spec", "steps", i)
        if step.action_type in ordering:
            state.sink.error(
                "PP301", f"duplicate step `{step.action_type}`", src.location((*base, "actionType"))
            )
            ok = False
            continue
        ordering[step.action_type] = (i, tuple(step.after))
        if state.risk is not None and step.risk not in state.risk.levels:
            _unknown(
                state,
                "PP302",
                "risk level",
                step.risk,
                state.risk.levels,
                src.location((*base, "risk")),
            )
            ok = False
        for j, dep in enumerate(step.after):
            if dep not in names:
                _unknown(state, "PP302", "step", dep, names, src.location((*base, "after", j)))
                ok = False
            elif dep == step.action_type:
                state.sink.error(
                    "PP303",
                    f"step `{dep}` cannot come after itself",
                    src.location((*base, "after", j)),
                )
                ok = False
        when = None
        if step.when is not None:
            expr = _compile_cel(state, doc, (*base, "when"), step.when)
            ok = ok and expr is not None
            if expr is not None:
                when = CompiledCondition(
                    f"{step.action_type}.when",
                    None,
                    expr,
                    _ref(doc, f"{step.action_type}.when", (*base, "when")),
                )
        not_before = None
        if step.timing.not_before is not None:
            path = (*base, "timing", "notBefore")
            expr = _compile_cel(state, doc, path, step.timing.not_before, expect_bool=False)
            if expr is not None and expr.result_type not in (TIMESTAMP, DYN):
                state.sink.error(
                    "PP405",
                    f"`notBefore` must be a timestamp expression, got {expr.result_type}",
                    src.expr_location(path, 1, 1),
                )
                expr = None
            ok = ok and expr is not None
            if expr is not None:
                not_before = CompiledCondition(
                    f"{step.action_type}.notBefore",
                    None,
                    expr,
                    _ref(doc, f"{step.action_type}.notBefore", path),
                )
        compiled_steps[step.action_type] = CompiledStep(
            action_type=step.action_type,
            description=step.description,
            risk=step.risk,
            human_touch=step.human_touch,
            required=step.required,
            after=tuple(step.after),
            when=when,
            after_activation_days=step.timing.after_activation_days,
            not_before=not_before,
            retry=RetrySpec(
                step.retry.limit,
                step.retry.backoff_minutes,
                step.retry.backoff_multiplier,
                step.retry.on_exhausted,
            ),
            parameters=MappingProxyType(dict(step.parameters)),
            ref=_ref(doc, step.action_type, (*base, "actionType")),
        )
    order = _topological(state, doc, ordering) if ok else None
    eligibility = [
        _condition(state, doc, ("spec", "eligibility", i), c)
        for i, c in enumerate(spec.eligibility)
    ]
    objective = [
        _condition(state, doc, ("spec", "objective", "conditions", i), c)
        for i, c in enumerate(spec.objective.conditions)
    ]
    _check_condition_ids(state, doc)
    if not ok or order is None or lifecycle is None:
        return
    if None in eligibility or None in objective:
        return
    state.plan_types[doc.name] = CompiledPlanType(
        name=doc.name,
        version=doc.version,
        description=cast("PlanType", doc.model).metadata.description,
        lifecycle=spec.lifecycle,
        max_duration=timedelta(days=spec.max_duration_days),
        complete_when_all_steps_done=spec.complete_when_all_steps_done,
        eligibility=tuple(c for c in eligibility if c is not None),
        objective_mode=spec.objective.mode,
        objective=tuple(c for c in objective if c is not None),
        steps=MappingProxyType(compiled_steps),
        step_order=order,
        ref=_ref(doc, doc.name, ("metadata", "name")),
    )


def _check_condition_ids(state: CompileState, doc: TypedDocument) -> None:
    assert doc.kind == "PlanType"
    seen: set[str] = set()
    groups: list[tuple[tuple[str | int, ...], list[Condition]]] = [
        (("spec", "eligibility"), cast("PlanType", doc.model).spec.eligibility),
        (
            ("spec", "objective", "conditions"),
            cast("PlanType", doc.model).spec.objective.conditions,
        ),
    ]
    for base, conditions in groups:
        for i, cond in enumerate(conditions):
            if cond.id in seen:
                state.sink.error(
                    "PP301",
                    f"duplicate condition id `{cond.id}`",
                    doc.source.location((*base, i, "id")),
                )
            seen.add(cond.id)


_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
_PLAN_ROOT = re.compile(r"(?<![.\w])plan\b")


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _proposal_expr(
    state: CompileState,
    doc: TypedDocument,
    path: tuple[str | int, ...],
    source: str,
    *,
    expect_bool: bool,
    start: tuple[int, int] = (1, 1),
) -> CompiledExpr | None:
    """Compile a proposal expression: like any other, but `plan` does not exist yet."""
    expr = _compile_cel(state, doc, path, source, expect_bool=expect_bool, start=start)
    if expr is None or "plan" not in expr.roots:
        return expr
    found = _PLAN_ROOT.search(source)
    line, column = _position(source, found.start() if found else 0)
    line += start[0] - 1
    column += start[1] - 1 if line == start[0] else 0
    state.sink.error(
        "PP402",
        "`plan` cannot be used in a proposal rule: no plan exists yet",
        doc.source.expr_location(path, line, column),
        hint="proposal rules see `account`, `signals`, `tenant` and `now`",
    )
    return None


def _template(
    state: CompileState,
    doc: TypedDocument,
    path: tuple[str | int, ...],
    text: str,
    rule: str,
) -> CompiledTemplate | None:
    """Split a text template into literal text and compiled ``${...}`` placeholders."""
    parts: list[str | CompiledCondition] = []
    literals: list[tuple[int, str]] = []
    ok = True
    pos = 0
    for i, match in enumerate(_PLACEHOLDER.finditer(text)):
        parts.append(text[pos : match.start()])
        literals.append((pos, text[pos : match.start()]))
        pos = match.end()
        source = match.group(1)
        start = _position(text, match.start(1))
        if not source.strip():
            state.sink.error(
                "PP401",
                "empty placeholder `${}`",
                doc.source.expr_location(path, *_position(text, match.start())),
            )
            ok = False
            continue
        expr = _proposal_expr(state, doc, path, source, expect_bool=False, start=start)
        if expr is not None and isinstance(expr.result_type, ListType | MapType | ObjectType):
            state.sink.error(
                "PP406",
                f"placeholder `${{{source.strip()}}}` gives {expr.result_type}, not a single value",
                doc.source.expr_location(path, *start),
            )
            expr = None
        if expr is None:
            ok = False
            continue
        parts.append(CompiledCondition(f"{rule}[{i}]", None, expr, _ref(doc, rule, path)))
    parts.append(text[pos:])
    literals.append((pos, text[pos:]))
    for offset, piece in literals:
        if "${" in piece:
            state.sink.error(
                "PP401",
                "placeholder `${` is not closed with `}`",
                doc.source.expr_location(path, *_position(text, offset + piece.index("${"))),
            )
            ok = False
    if not ok:
        return None
    return CompiledTemplate(text, tuple(p for p in parts if p != ""))


def stage_proposals(state: CompileState) -> None:
    """Compile and type-check each plan type's proposal rules (`spec.proposal`)."""
    for doc in state.by_kind["PlanType"].values():
        assert doc.kind == "PlanType"
        if cast("PlanType", doc.model).spec.proposal is not None:
            _compile_proposal(state, doc)


def _compile_proposal(state: CompileState, doc: TypedDocument) -> None:
    assert doc.kind == "PlanType"
    spec = cast("PlanType", doc.model).spec
    proposal = spec.proposal
    assert proposal is not None
    base: tuple[str | int, ...] = ("spec", "proposal")
    src = doc.source
    steps = {s.action_type: s for s in spec.steps}
    ok = True
    when: list[CompiledCondition] = []
    seen: set[str] = set()
    for i, cond in enumerate(proposal.when):
        path = (*base, "when", i)
        if cond.id in seen:
            state.sink.error(
                "PP301", f"duplicate condition id `{cond.id}`", src.location((*path, "id"))
            )
            ok = False
        seen.add(cond.id)
        expr = _proposal_expr(state, doc, (*path, "expr"), cond.expr, expect_bool=True)
        if expr is None:
            ok = False
            continue
        when.append(
            CompiledCondition(cond.id, cond.description, expr, _ref(doc, cond.id, (*path, "expr")))
        )
    include: dict[str, CompiledCondition] = {}
    for name, source in proposal.include_steps.items():
        path = (*base, "includeSteps", name)
        if name not in steps:
            _unknown(state, "PP302", "step", name, list(steps), src.location(path))
            ok = False
            continue
        if steps[name].required:
            state.sink.warning(
                "PP311",
                f"step `{name}` is required and always included: its `includeSteps` condition has no effect",
                src.location(path),
            )
        expr = _proposal_expr(state, doc, path, source, expect_bool=True)
        if expr is None:
            ok = False
            continue
        include[name] = CompiledCondition(
            f"{name}.include", None, expr, _ref(doc, f"{name}.include", path)
        )
    limit = spec.max_duration_days
    lifecycle = state.lifecycles.get(spec.lifecycle)
    if lifecycle is not None:
        limit = min(limit, lifecycle.max_plan_duration.days)
    days = proposal.expires_in_days or limit
    if days > limit:
        state.sink.error(
            "PP310",
            f"proposals expire after {days} days, more than the {limit} days plans of "
            f"`{doc.name}` may run",
            src.location((*base, "expiresInDays")),
            hint=f"use at most {limit}",
        )
        ok = False
    texts: dict[str, CompiledTemplate | None] = {}
    for key, field_name in (("objective", "objective"), ("rationale", "rationale")):
        text = getattr(proposal, field_name)
        if text is not None:
            texts[key] = _template(state, doc, (*base, key), text, f"proposal.{key}")
            ok = ok and texts[key] is not None
    parameters: dict[str, dict[str, CompiledTemplate]] = {}
    for step_name, values in proposal.parameters.items():
        step = steps.get(step_name)
        if step is None:
            _unknown(
                state,
                "PP302",
                "step",
                step_name,
                list(steps),
                src.location((*base, "parameters", step_name)),
            )
            ok = False
            continue
        for param, text in values.items():
            path = (*base, "parameters", step_name, param)
            declared = step.parameters.get(param)
            if declared is None:
                _unknown(
                    state, "PP302", "parameter", param, list(step.parameters), src.location(path)
                )
                ok = False
                continue
            if declared.type != "string":
                state.sink.error(
                    "PP406",
                    f"parameter `{param}` of `{step_name}` is {declared.type}: "
                    "proposal parameters are text templates",
                    src.location(path),
                )
                ok = False
                continue
            compiled = _template(state, doc, path, text, f"{step_name}.{param}")
            if compiled is None:
                ok = False
                continue
            parameters.setdefault(step_name, {})[param] = compiled
    ptype = state.plan_types.get(doc.name)
    if not ok or ptype is None:
        return
    state.plan_types[doc.name] = replace(
        ptype,
        proposal=CompiledProposal(
            when=tuple(when),
            include_steps=MappingProxyType(include),
            expires_in_days=days,
            objective=texts.get("objective"),
            rationale=texts.get("rationale"),
            parameters=MappingProxyType({k: MappingProxyType(v) for k, v in parameters.items()}),
            ref=_ref(doc, "proposal", base),
        ),
    )


def stage_bundle(state: CompileState) -> None:
    """Freeze the results into a bundle when nothing failed."""
    if state.sink.has_errors or state.sink.dropped:
        return
    if state.risk is None or state.authority is None or state.conflict is None or state.cel is None:
        return
    ordered = sorted(state.documents, key=lambda d: (d.kind, d.name))
    state.bundle = PolicyBundle(
        documents=tuple(DocumentInfo(d.kind, d.name, d.version, d.source.path) for d in ordered),
        plan_types=MappingProxyType(dict(state.plan_types)),
        lifecycles=MappingProxyType(dict(state.lifecycles)),
        risk=state.risk,
        authority=state.authority,
        conflict=state.conflict,
        context_schema=MappingProxyType(state.context_schema),
        cel=state.cel,
        contents=tuple((d.kind, d.name, d.source.data) for d in ordered),
    )


Stage = Callable[[CompileState], None]

STAGES: tuple[tuple[str, Stage], ...] = (
    ("load", stage_load),
    ("schema", stage_schema),
    ("index", stage_index),
    ("context", stage_context),
    ("risk", stage_risk),
    ("authority", stage_authority),
    ("conflict", stage_conflict),
    ("lifecycles", stage_lifecycles),
    ("expressions", stage_expressions),
    ("plan_types", stage_plan_types),
    ("proposals", stage_proposals),
    ("bundle", stage_bundle),
)


def compile_bundle(
    paths: Sequence[str | Path],
    *,
    limit: int = 500,
    limits: LoadLimits | None = None,
    jobs: int = 1,
    check_jobs: int = 1,
) -> CompileResult:
    """Run every stage over ``paths`` (files or directories) and collect diagnostics.

    ``jobs`` > 1 reads large file sets in that many processes (this one and
    forked workers, :mod:`planpolicy.readahead`);
    ``check_jobs`` > 1 checks many new CEL expressions with one forked worker
    (:mod:`planpolicy.celahead`). The CLI does; embedders keep the defaults,
    which never fork.
    """
    state = CompileState(
        paths, DiagnosticSink(limit=limit), limits or LoadLimits(), jobs, check_jobs
    )
    for _name, stage in STAGES:
        stage(state)
    save_compile_cache()
    return CompileResult(
        bundle=state.bundle,
        diagnostics=tuple(state.sink.sorted()),
        documents=tuple(state.documents),
        plan_types=MappingProxyType(dict(state.plan_types)),
        dropped=state.sink.dropped,
    )


def load_bundle(paths: Sequence[str | Path]) -> PolicyBundle:
    """Compile ``paths`` or raise :class:`BundleError` with every diagnostic."""
    result = compile_bundle(paths)
    if result.bundle is None:
        raise BundleError(result.diagnostics)
    return result.bundle


def sources_of(result: CompileResult) -> dict[str, SourceDocument]:
    """Document key ``kind/name`` -> its source (used by lint rules)."""
    return {f"{d.kind}/{d.name}": d.source for d in result.documents}
