"""A plan update's stored form, made field by field from the stored plan it changes.

:func:`orchestrator.adapters.codec.stored_form` checks a plan by encoding it
to JSON and validating it back, which refuses an invalid plan and gives what a
durable store reads back. A write of the poll loop changes a few fields of a
plan it has just read (``updated_at``, ``next_due_at``, a step's status, ...)
and hands every other field back unchanged: the very objects the stored plan
holds (the memory store hands out the plan it keeps, sealed), its steps
included, or their immutable values when the plan was copied.

:func:`stored_update` uses that. A field whose value is the stored plan's own
object is a value the round trip has already given, so it is kept as it is
(the round trip gives such a value back unchanged). Every other field goes
through the same round trip on its own, with the serializer and validator of
that field taken from the model's own schema; the model has no validator
across fields, so the plan's round trip is exactly its fields' round trips.
Whenever that cannot be shown (another type, an unexpected attribute, a
field that fails its round trip, a changed step list), ``None`` is returned
and the caller falls back to :func:`~orchestrator.adapters.codec.stored_form`,
which refuses the plan with its usual message or stores it.

Only the memory store uses this: it keeps decoded plans, sealed
(:func:`planpolicy.plan.read_only`), and so is what this makes: a new step
list and new parameters are read-only, like the stored ones it keeps. The
durable stores need the JSON text anyway.
"""

from __future__ import annotations

from itertools import compress
from operator import is_not, itemgetter
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, SchemaSerializer, SchemaValidator

from planpolicy.plan import PlanStep, ReadOnlyDict, ReadOnlyList, RevenuePlanV1

__all__ = ["stored_update"]

_UNPROVEN: Final = object()
"""What a field's round trip gives when it fails (the whole plan's then fails too)."""

_set_attr = object.__setattr__
_M = TypeVar("_M", bound=BaseModel)


class _FieldTrips(Generic[_M]):
    """The JSON round trip of each field of one model, from the model's own core schema."""

    def __init__(self, cls: type[_M]) -> None:
        schema: Any = cls.__pydantic_core_schema__
        config = schema.get("config")
        self.cls = cls
        self.names: tuple[str, ...] = tuple(cls.model_fields)
        self.values = itemgetter(*self.names)  # a model's field values, in field order
        self.trips: dict[str, tuple[SchemaSerializer, SchemaValidator]] = {}
        fields = schema.get("schema", {}).get("fields") if schema.get("type") == "model" else None
        if not isinstance(fields, dict) or tuple(fields) != self.names:
            return  # a schema this does not know how to split: every plan takes the full path
        for name, field in fields.items():
            inner = field["schema"]
            self.trips[name] = (SchemaSerializer(inner, config), SchemaValidator(inner, config))

    def round_trip(self, name: str, value: Any) -> Any:
        """``value`` encoded as field ``name`` and validated back (``_UNPROVEN`` if that fails)."""
        trip = self.trips.get(name)
        if trip is None:
            return _UNPROVEN
        serializer, validator = trip
        try:
            return validator.validate_json(serializer.to_json(value, warnings=False))
        except (ValidationError, PydanticSerializationError, ValueError, TypeError):
            return _UNPROVEN

    def changed(self, model: object, stored: BaseModel) -> list[str] | None:
        """The fields of ``model`` whose value is not ``stored``'s very object, in order.

        ``None`` when ``model`` is not exactly an instance as validation builds
        it (another class, extra or private attributes, other attributes).
        """
        if type(model) is not self.cls or model.__pydantic_extra__ is not None:
            return None
        if getattr(model, "__pydantic_private__", None) is not None:
            return None
        values = model.__dict__
        if len(values) != len(self.names):
            return None
        try:
            mine = self.values(values)
        except KeyError:
            return None
        return list(compress(self.names, map(is_not, mine, self.values(stored.__dict__))))

    def build(self, values: dict[str, Any], fields_set: set[str]) -> _M:
        """An instance holding ``values`` (already validated), as validation would build it."""
        out = self.cls.__new__(self.cls)
        _set_attr(out, "__dict__", values)
        _set_attr(out, "__pydantic_fields_set__", fields_set)
        _set_attr(out, "__pydantic_extra__", None)
        _set_attr(out, "__pydantic_private__", None)
        return out


_PLAN: Final = _FieldTrips(RevenuePlanV1)
_STEP: Final = _FieldTrips(PlanStep)
_LISTS: Final = (list, ReadOnlyList)


def _same_flat_dict(new: Any, old: Any) -> bool:
    """``new`` holds exactly ``old``'s string keys, each with ``old``'s very value object."""
    if type(new) is not dict or len(new) != len(old):
        return False
    for key, value in new.items():
        if type(key) is not str or key not in old or old[key] is not value:
            return False
    return True


def _stored_step(old: PlanStep, new: object) -> PlanStep | None:
    """The stored form of ``new``, the step that was ``old`` (``None``: not provable)."""
    if new is old:
        return old
    names = _STEP.changed(new, old)
    if names is None:
        return None
    values = new.__dict__
    before = old.__dict__
    stored: dict[str, Any] | None = None
    for name in names:
        value = values[name]
        if name == "parameters" and _same_flat_dict(value, before[name]):
            continue  # a copy of the stored dict: keep the stored one
        checked = _STEP.round_trip(name, value)
        if checked is _UNPROVEN:
            return None
        if name == "parameters":
            checked = ReadOnlyDict(checked)
        if stored is None:
            stored = dict(before)
        stored[name] = checked
    if stored is None:
        return old  # nothing changed: the stored step serves again (no one else holds it)
    return _STEP.build(stored, set(old.__pydantic_fields_set__))


def stored_update(stored: RevenuePlanV1, plan: RevenuePlanV1, version: int) -> RevenuePlanV1 | None:
    """What ``codec.stored_form(plan, version=version)`` gives, made from ``stored``.

    ``stored`` is the plan as the store holds it (a round trip's result, never
    handed to a caller); ``plan`` is the update. Returns ``None`` when the
    result cannot be shown equal to the full round trip's without making it,
    including whenever the full round trip would refuse ``plan``: the caller
    then makes it. The result shares the unchanged steps and values of
    ``stored`` and no mutable object with ``plan``; its step list and
    parameters are read-only, as in ``stored``.
    """
    names = _PLAN.changed(plan, stored)
    if names is None or type(version) is not int or version < 1:
        return None
    values = plan.__dict__
    out = dict(stored.__dict__)
    for name in names:
        value = values[name]
        if name == "version":
            continue
        if name == "steps":
            kept = out[name]
            if type(value) not in _LISTS or len(value) != len(kept):
                return None
            steps = []
            for old, new in zip(kept, value, strict=True):
                step = _stored_step(old, new)
                if step is None:
                    return None
                steps.append(step)
            if any(map(is_not, steps, kept)):
                out[name] = ReadOnlyList(steps)
            continue
        checked = _PLAN.round_trip(name, value)
        if checked is _UNPROVEN:
            return None
        out[name] = checked
    out["version"] = version
    return _PLAN.build(out, set(stored.__pydantic_fields_set__))
