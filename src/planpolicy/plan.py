"""RevenuePlanV1: the plan record, its steps, and reading/writing plan files.

A plan is data: the engine never stores derived facts on it. Its risk is the
highest risk of its steps under the bundle's RiskPolicy (see
:meth:`planpolicy.model.PolicyBundle.plan_risk`), computed on demand.

Plans and steps are frozen records: assigning a field raises, and a changed
plan is a copy (:func:`replaced`, ``model_copy(update=...)``). Their lists and
dicts are ordinary ones, except in a plan that :func:`read_only` has sealed
(what the memory store shares between its readers): there the step list and
each step's parameters refuse changes in place too, so nothing reachable from
the plan can change.
"""

from __future__ import annotations

import copy
import enum
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, SupportsIndex, TypeVar

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

__all__ = [
    "PlanFileError",
    "PlanStatus",
    "PlanStep",
    "ReadOnlyDict",
    "ReadOnlyList",
    "RevenuePlanV1",
    "StepStatus",
    "dump_plan",
    "load_plan",
    "new_step_id",
    "read_only",
    "replaced",
]

Ident = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]
ParamValue = str | int | float | bool


class PlanStatus(enum.StrEnum):
    """The lifecycle states of the bundled default lifecycle."""

    DRAFT = "DRAFT"
    APPROVED = "APPROVED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


class StepStatus(enum.StrEnum):
    """Where a step is in its execution."""

    PENDING = "PENDING"
    DISPATCHED = "DISPATCHED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def is_settled(self) -> bool:
        """Done or skipped: later steps ordered after it may run."""
        return self in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


def new_step_id() -> uuid.UUID:
    """A fresh, position-independent step id."""
    return uuid.uuid4()


class _Rec(BaseModel):
    """A frozen record: assigning a field raises; a changed record is a copy (:func:`replaced`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanStep(_Rec):
    """One step of a plan: an action of an allowed type, with stable identity."""

    step_id: uuid.UUID = Field(
        default_factory=new_step_id,
        description="Stable UUID of the step, independent of its position in the plan",
    )
    action_type: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")] = Field(
        description="Action type, one of the plan type's allowed steps"
    )
    status: StepStatus = Field(default=StepStatus.PENDING, description="Execution status")
    attempts: int = Field(default=0, ge=0, le=1000, description="Attempts dispatched so far")
    parameters: dict[Ident, ParamValue] = Field(
        default_factory=dict, description="Action parameters, as the plan type declares them"
    )
    human_touch: bool = Field(
        default=False, description="A human must approve the step before dispatch"
    )
    human_approved_by: str | None = Field(default=None, description="Who approved the step")
    human_approved_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = Field(default=None, description="Earliest dispatch time")
    last_error: str | None = Field(default=None, max_length=2000)
    skip_reason: str | None = Field(default=None, max_length=2000)
    completed_at: AwareDatetime | None = None


class RevenuePlanV1(_Rec):
    """A goal-level revenue plan for one customer account."""

    schema_version: Literal["RevenuePlanV1"] = Field(
        default="RevenuePlanV1", description="Record format"
    )
    plan_id: Ident = Field(default_factory=lambda: str(uuid.uuid4()), description="Plan id")
    tenant_id: Ident = Field(description="Tenant that owns the plan; every access is scoped by it")
    account_id: Ident = Field(description="Customer account the plan is for")
    plan_type: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")] = Field(
        description="Plan type name, e.g. `RENEWAL_DEFENSE`"
    )
    plan_type_version: int = Field(
        ge=1, description="Version of the plan type the plan was written for"
    )
    bundle_digest: str | None = Field(
        default=None, description="Digest of the policy bundle the plan was approved under"
    )
    status: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")] = Field(
        default=PlanStatus.DRAFT.value, description="Lifecycle state"
    )
    objective: str = Field(default="", max_length=2000, description="The goal, in words")
    steps: list[PlanStep] = Field(min_length=1, max_length=100, description="Ordered steps")
    owner: Ident = Field(description="User accountable for the plan")
    created_by: Ident = Field(description="Proposer of the plan (a user or a proposer id)")
    approved_by: Ident | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    approved_at: AwareDatetime | None = None
    activated_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    expires_at: AwareDatetime = Field(description="Hard end of the plan")
    completion_reason: str | None = Field(
        default=None,
        description="Why the plan ended: objective_met, all_steps_done, expired, aborted, ...",
    )
    next_due_at: AwareDatetime | None = Field(
        default=None, description="When the orchestrator should next look at the plan"
    )
    evaluation_error: str | None = Field(
        default=None,
        max_length=2000,
        description="Why the objective cannot be evaluated now (noted in the ledger once per cause)",
    )
    version: int = Field(default=1, ge=1, description="Optimistic-concurrency counter")

    def step(self, step_id: uuid.UUID | str) -> PlanStep:
        """The step with this id; ``KeyError`` if absent."""
        wanted = step_id if type(step_id) is uuid.UUID else uuid.UUID(str(step_id))
        for step in self.steps:
            if step.step_id == wanted:
                return step
        raise KeyError(str(step_id))

    def step_by_action(self, action_type: str) -> PlanStep | None:
        """The first step of this action type, if any."""
        return next((s for s in self.steps if s.action_type == action_type), None)


_M = TypeVar("_M", bound=BaseModel)
_set_attr = object.__setattr__


def replaced(model: _M, update: dict[str, Any]) -> _M:
    """``model.model_copy(update=update)``: the same shallow copy, made directly.

    Like ``model_copy``, nothing is validated: it is for values the caller
    knows to be right (a store validates what it keeps). Models that allow
    extra fields take ``model_copy`` itself.
    """
    if model.model_config.get("extra") == "allow":
        return model.model_copy(update=update)
    cls = type(model)
    out = cls.__new__(cls)
    values = model.__dict__.copy()
    values.update(update)
    _set_attr(out, "__dict__", values)
    extra = model.__pydantic_extra__
    _set_attr(out, "__pydantic_extra__", None if extra is None else extra.copy())
    fields_set = set(model.__pydantic_fields_set__)
    fields_set.update(update)
    _set_attr(out, "__pydantic_fields_set__", fields_set)
    private = getattr(model, "__pydantic_private__", None)
    if private is not None:
        private = {k: v for k, v in private.items() if v is not PydanticUndefined}
    _set_attr(out, "__pydantic_private__", private)
    return out


def _refused(container: object) -> TypeError:
    return TypeError(
        f"{type(container).__name__} is read-only: it belongs to a stored plan shared between "
        "readers (copy it, e.g. `list(...)` or `dict(...)`, and use `replaced` for a changed plan)"
    )


_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")


class ReadOnlyList(list[_T]):
    """A ``list`` that refuses changes in place: the step list of a :func:`read_only` plan.

    It is a list to everything that reads it (``isinstance``, ``==``, indexing,
    iteration, JSON and pydantic's serializer); what is made from it
    (``list(...)``, ``.copy()``, slices, ``+``, ``copy.copy``, ``copy.deepcopy``,
    pickling) is a plain, mutable list.
    """

    __slots__ = ()

    def append(self, value: _T, /) -> NoReturn:
        raise _refused(self)

    def extend(self, values: Iterable[_T], /) -> NoReturn:
        raise _refused(self)

    def insert(self, index: SupportsIndex, value: _T, /) -> NoReturn:
        raise _refused(self)

    def pop(self, index: SupportsIndex = -1, /) -> NoReturn:
        raise _refused(self)

    def remove(self, value: _T, /) -> NoReturn:
        raise _refused(self)

    def clear(self) -> NoReturn:
        raise _refused(self)

    def sort(self, *, key: Any = None, reverse: bool = False) -> NoReturn:
        raise _refused(self)

    def reverse(self) -> NoReturn:
        raise _refused(self)

    def __setitem__(self, index: Any, value: Any, /) -> NoReturn:
        raise _refused(self)

    def __delitem__(self, index: Any, /) -> NoReturn:
        raise _refused(self)

    def __iadd__(self, values: Iterable[_T], /) -> NoReturn:  # type: ignore[misc,override]
        raise _refused(self)

    def __imul__(self, times: SupportsIndex, /) -> NoReturn:
        raise _refused(self)

    def __copy__(self) -> list[_T]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[_T]:
        out: list[_T] = []
        memo[id(self)] = out
        out.extend(copy.deepcopy(item, memo) for item in self)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


class ReadOnlyDict(dict[_K, _V]):
    """A ``dict`` that refuses changes in place: a step's parameters in a :func:`read_only` plan.

    It is a dict to everything that reads it; what is made from it
    (``dict(...)``, ``.copy()``, ``|``, ``copy.copy``, ``copy.deepcopy``,
    pickling) is a plain, mutable dict.
    """

    __slots__ = ()

    def __setitem__(self, key: _K, value: _V, /) -> NoReturn:
        raise _refused(self)

    def __delitem__(self, key: _K, /) -> NoReturn:
        raise _refused(self)

    def clear(self) -> NoReturn:
        raise _refused(self)

    def pop(self, key: Any, default: Any = None, /) -> NoReturn:
        raise _refused(self)

    def popitem(self) -> NoReturn:
        raise _refused(self)

    def setdefault(self, key: Any, default: Any = None, /) -> NoReturn:
        raise _refused(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _refused(self)

    def __ior__(self, other: Any, /) -> NoReturn:  # type: ignore[misc]
        raise _refused(self)

    def __copy__(self) -> dict[_K, _V]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[_K, _V]:
        out: dict[_K, _V] = {}
        memo[id(self)] = out
        for key, value in self.items():
            out[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def read_only(plan: RevenuePlanV1) -> RevenuePlanV1:
    """Seal ``plan`` in place: its step list and its steps' parameters become read-only.

    With the plan and its steps frozen, nothing reachable from the plan can be
    changed afterwards, so it can be shared between readers instead of copied
    for each. ``plan`` must be a plan no one else holds yet (a store's freshly
    validated stored form): the seal replaces containers inside it. Steps and
    parameters already sealed are kept as they are.
    """
    steps = plan.__dict__["steps"]
    for step in steps:
        values = step.__dict__
        parameters = values["parameters"]
        if type(parameters) is not ReadOnlyDict:
            values["parameters"] = ReadOnlyDict(parameters)
    if type(steps) is not ReadOnlyList:
        plan.__dict__["steps"] = ReadOnlyList(steps)
    return plan


class PlanFileError(ValueError):
    """A plan file could not be read; ``problems`` lists located messages."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def _normalize_yaml(value: Any) -> Any:
    """PyYAML turns timestamps into datetimes; make naive ones UTC."""
    if isinstance(value, dict):
        return {str(k): _normalize_yaml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_yaml(v) for v in value]
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def load_plan(path: str | Path) -> RevenuePlanV1:
    """Read a plan from a ``.json``, ``.yaml`` or ``.yml`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(str(path), [f"cannot read file: {exc}"]) from exc
    try:
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PlanFileError(str(path), [f"syntax error: {exc}"]) from exc
    try:
        return RevenuePlanV1.model_validate(_normalize_yaml(raw))
    except ValidationError as exc:
        problems = [
            f"`{'.'.join(str(part) for part in err['loc']) or '(root)'}`: {err['msg'].lower()}"
            for err in exc.errors()
        ]
        raise PlanFileError(str(path), problems) from exc


def dump_plan(plan: RevenuePlanV1, *, fmt: Literal["json", "yaml"] = "json") -> str:
    """Serialise a plan as JSON or YAML text."""
    data = plan.model_dump(mode="json")
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"
