"""The compiled policy bundle: frozen objects built once, evaluated many times.

Nothing here parses YAML or compiles CEL; the compiler builds these objects
and everything downstream (gate, evaluator, lifecycle, orchestrator) reads
them. Mappings are read-only views so a bundle cannot be changed after load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from planpolicy.diagnostics import Location

if TYPE_CHECKING:
    from planpolicy.cel import CelEnvironment, CompiledExpr
    from planpolicy.documents import ParameterSpec
    from planpolicy.plan import RevenuePlanV1

__all__ = [
    "AuthorityRules",
    "CompiledCondition",
    "CompiledLifecycle",
    "CompiledPlanType",
    "CompiledProposal",
    "CompiledStep",
    "CompiledTemplate",
    "ConflictRule",
    "DocumentInfo",
    "Grant",
    "LazyRuleRef",
    "PolicyBundle",
    "RetrySpec",
    "RiskOrder",
    "RuleRef",
    "TransitionSpec",
    "content_digest",
]


@dataclass(frozen=True)
class RuleRef:
    """Where a rule lives: document kind, name, version, rule id and source location."""

    kind: str
    document: str
    version: int
    rule: str
    location: Location | None = None

    def as_dict(self) -> dict[str, Any]:
        loc = self.location
        return {
            "kind": self.kind,
            "document": self.document,
            "version": self.version,
            "rule": self.rule,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
        }


class LazyRuleRef(RuleRef):
    """A :class:`RuleRef` whose location is found on first use.

    The compiler makes one for every rule, but a location is only read when
    something is reported or explained, so finding it is left until then.
    It compares, hashes and prints like a :class:`RuleRef` of the same values,
    and pickles as one.
    """

    def __init__(
        self,
        kind: str,
        document: str,
        version: int,
        rule: str,
        locate: Callable[[], Location | None],
    ) -> None:
        # frozen: the fields are set in the instance dict (one call, not five setattrs)
        self.__dict__.update(
            kind=kind, document=document, version=version, rule=rule, _locate=locate
        )

    @cached_property
    def location(self) -> Location | None:
        """Where the rule is (found once, on first use)."""
        locate: Callable[[], Location | None] = self.__dict__["_locate"]
        return locate()

    def __reduce__(self) -> tuple[type[RuleRef], tuple[str, str, int, str, Location | None]]:
        return (RuleRef, (self.kind, self.document, self.version, self.rule, self.location))


@dataclass(frozen=True)
class CompiledCondition:
    """A CEL condition compiled and type-checked at load time."""

    id: str
    description: str | None
    expr: CompiledExpr
    ref: RuleRef


@dataclass(frozen=True)
class RetrySpec:
    """Retry limit, backoff and the adaptation applied when retries run out."""

    limit: int
    backoff_minutes: int
    backoff_multiplier: float
    on_exhausted: str

    def backoff(self, failed_attempts: int) -> timedelta:
        """Wait after the ``failed_attempts``-th definite failure (1-based)."""
        factor = self.backoff_multiplier ** max(failed_attempts - 1, 0)
        return timedelta(minutes=self.backoff_minutes * factor)


@dataclass(frozen=True)
class CompiledStep:
    """An allowed step of a plan type."""

    action_type: str
    description: str | None
    risk: str
    human_touch: bool
    required: bool
    after: tuple[str, ...]
    when: CompiledCondition | None
    after_activation_days: int | None
    not_before: CompiledCondition | None
    retry: RetrySpec
    parameters: Mapping[str, ParameterSpec]
    ref: RuleRef


@dataclass(frozen=True)
class CompiledTemplate:
    """A text template: literal text and ``${...}`` placeholders compiled as CEL."""

    source: str
    parts: tuple[str | CompiledCondition, ...]


@dataclass(frozen=True)
class CompiledProposal:
    """The compiled proposal rules of a plan type (see ``spec.proposal``)."""

    when: tuple[CompiledCondition, ...]
    include_steps: Mapping[str, CompiledCondition]
    expires_in_days: int
    objective: CompiledTemplate | None
    rationale: CompiledTemplate | None
    parameters: Mapping[str, Mapping[str, CompiledTemplate]]
    ref: RuleRef

    def conditions(self) -> Iterable[CompiledCondition]:
        """Every CEL expression of the proposal rules, placeholders included."""
        yield from self.when
        yield from self.include_steps.values()
        templates = [self.objective, self.rationale]
        templates += [t for params in self.parameters.values() for t in params.values()]
        for template in templates:
            if template is not None:
                yield from (p for p in template.parts if isinstance(p, CompiledCondition))

    @cached_property
    def roots(self) -> frozenset[str]:
        """Context roots the proposal rules read."""
        return frozenset(root for cond in self.conditions() for root in cond.expr.roots)

    @cached_property
    def paths(self) -> frozenset[tuple[str, ...]]:
        """Context paths the proposal rules read (see :attr:`CompiledPlanType.paths`)."""
        return frozenset(path for cond in self.conditions() for path in cond.expr.paths)


@dataclass(frozen=True)
class CompiledPlanType:
    """A plan type with its steps in a valid order and its CEL compiled."""

    name: str
    version: int
    description: str
    lifecycle: str
    max_duration: timedelta
    complete_when_all_steps_done: bool
    eligibility: tuple[CompiledCondition, ...]
    objective_mode: str
    objective: tuple[CompiledCondition, ...]
    steps: Mapping[str, CompiledStep]
    step_order: tuple[str, ...]
    ref: RuleRef
    proposal: CompiledProposal | None = None

    def conditions(self) -> Iterable[CompiledCondition]:
        """Every CEL condition of the plan type."""
        yield from self.eligibility
        yield from self.objective
        for step in self.steps.values():
            if step.when is not None:
                yield step.when
            if step.not_before is not None:
                yield step.not_before

    @cached_property
    def roots(self) -> frozenset[str]:
        """Context roots referenced by any of its expressions."""
        return frozenset(root for cond in self.conditions() for root in cond.expr.roots)

    @cached_property
    def paths(self) -> frozenset[tuple[str, ...]]:
        """Every context path its expressions read (``*`` stands for any key or index).

        The type checker records each value an expression uses, so an activation
        holding only these paths evaluates every expression exactly as the whole
        context would.
        """
        return frozenset(path for cond in self.conditions() for path in cond.expr.paths)


@dataclass(frozen=True)
class TransitionSpec:
    """One lifecycle transition."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    guards: frozenset[str]


@dataclass(frozen=True)
class CompiledLifecycle:
    """The lifecycle state machine description."""

    name: str
    version: int
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    transitions: tuple[TransitionSpec, ...]
    max_plan_duration: timedelta
    ref: RuleRef

    def transition(self, trigger: str, source: str) -> TransitionSpec | None:
        """The transition fired by ``trigger`` from ``source``, if any."""
        for spec in self.transitions:
            if spec.trigger == trigger and source in spec.sources:
                return spec
        return None

    @property
    def triggers(self) -> frozenset[str]:
        return frozenset(t.trigger for t in self.transitions)


@dataclass(frozen=True)
class RiskOrder:
    """Ordered risk levels, lowest first."""

    levels: tuple[str, ...]
    human_touch_from: str
    ref: RuleRef

    def rank(self, level: str) -> int:
        """Position of ``level`` (``ValueError`` if unknown)."""
        return self.levels.index(level)

    def highest(self, levels: Iterable[str]) -> str | None:
        """The highest of ``levels`` (the accumulation rule), ``None`` if empty."""
        known = [lvl for lvl in levels if lvl in self.levels]
        return max(known, key=self.levels.index) if known else None

    def requires_human_touch(self, level: str) -> bool:
        return self.rank(level) >= self.rank(self.human_touch_from)


@dataclass(frozen=True)
class Grant:
    """Roles allowed an action up to a plan risk level (``None``: any)."""

    action: str
    roles: frozenset[str]
    max_risk: str | None


@dataclass(frozen=True)
class AuthorityRules:
    """The compiled AuthorityPolicy."""

    grants: tuple[Grant, ...]
    owner_may: frozenset[str]
    proposer_may_approve: bool
    ref: RuleRef


@dataclass(frozen=True)
class ConflictRule:
    """The compiled ConflictPolicy."""

    scope: tuple[str, ...]
    occupying_states: frozenset[str]
    ref: RuleRef


@dataclass(frozen=True)
class DocumentInfo:
    """A document of the bundle: identity, version and origin."""

    kind: str
    name: str
    version: int
    file: str


def content_digest(contents: Sequence[tuple[str, str, Any]]) -> str:
    """``sha256:`` and the SHA-256 of the canonical JSON of ``(kind, name, data)`` items."""
    text = json.dumps(
        [list(item) for item in contents], sort_keys=True, separators=(",", ":"), default=str
    )
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class PolicyBundle:
    """Everything the engine needs, compiled once; immutable.

    ``contents`` are the documents' ``(kind, name, data)``, sorted by kind and
    name; :attr:`digest` identifies them.
    """

    documents: tuple[DocumentInfo, ...]
    plan_types: Mapping[str, CompiledPlanType]
    lifecycles: Mapping[str, CompiledLifecycle]
    risk: RiskOrder
    authority: AuthorityRules
    conflict: ConflictRule
    context_schema: Mapping[str, Any]
    cel: CelEnvironment = field(repr=False)
    contents: tuple[tuple[str, str, Any], ...] = field(default=(), repr=False)

    @cached_property
    def digest(self) -> str:
        """The content digest (:func:`content_digest` of ``contents``), computed on first use.

        Linting never asks for it: hashing 1,000 plan types' canonical JSON
        takes ~0.1 s.
        """
        return content_digest(self.contents)

    def plan_type(self, name: str) -> CompiledPlanType | None:
        """The plan type called ``name``, if the bundle has it."""
        return self.plan_types.get(name)

    def lifecycle_of(self, plan_type: CompiledPlanType) -> CompiledLifecycle:
        return self.lifecycles[plan_type.lifecycle]

    def plan_risk(self, plan: RevenuePlanV1) -> str | None:
        """The plan's risk: the highest risk of its known steps (accumulation rule)."""
        ptype = self.plan_types.get(plan.plan_type)
        if ptype is None:
            return None
        return self.risk.highest(
            ptype.steps[s.action_type].risk for s in plan.steps if s.action_type in ptype.steps
        )

    @cached_property
    def derived(self) -> dict[str, Any]:
        """Per-bundle helpers that modules derive from it on first use (not part of the bundle)."""
        return {}

    def versions(self) -> dict[str, int]:
        """``kind/name`` -> version of every document, for the ledger."""
        return {f"{d.kind}/{d.name}": d.version for d in self.documents}
