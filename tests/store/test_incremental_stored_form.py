"""The memory store's field-by-field stored form equals the full JSON round trip, or stands aside.

``incremental.stored_update`` may only ever return what ``codec.stored_form``
returns for the same update, sealed as the memory store keeps it
(``read_only``: the same values, of the same types, time zones and read-only
containers included, and the same set fields), and must return ``None`` for
every update the round trip refuses, so that the store refuses it with the
usual message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.adapters import codec, incremental
from orchestrator.adapters.incremental import stored_update
from orchestrator.adapters.memory import MemoryStore, detached
from orchestrator.errors import InvalidUpdate
from orchestrator.ledger import LedgerEvent
from planpolicy.plan import (
    PlanStatus,
    PlanStep,
    ReadOnlyDict,
    ReadOnlyList,
    RevenuePlanV1,
    StepStatus,
    read_only,
    replaced,
)
from support.plans import T0, created, draft, make_plan


class _Odd(StrEnum):
    ACTIVE = "ACTIVE"


def _stored_plan() -> RevenuePlanV1:
    """A plan as the memory store holds it: the result of the full round trip, sealed."""
    plan = make_plan(steps=3, next_due_at=T0)
    steps = [
        replaced(plan.steps[0], {"parameters": {"channel": "email", "n": 2, "x": 1.5, "b": True}}),
        *plan.steps[1:],
    ]
    return read_only(codec.stored_form(replaced(plan, {"steps": steps}), version=3)[0])


_TIMES: list[Any] = [
    T0 + timedelta(hours=1),
    datetime(2025, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    datetime(2025, 3, 1, 12, 0, fold=1, tzinfo=UTC),
    datetime(2025, 3, 1, 12, 0),  # naive: refused
    "2025-03-02T00:00:00Z",  # a string the round trip turns into a time
    "not a time",
    None,
    5,
]
_TEXTS: list[Any] = [
    "ACTIVE",
    "lower case",
    "X" * 2000,
    "X" * 2001,
    "\ud800",  # no JSON text: refused
    "Zürich",
    PlanStatus.COMPLETED,  # a str subclass the round trip turns into a plain str
    _Odd.ACTIVE,
    None,
    5,
    "",
]
_NUMBERS: list[Any] = [0, 1, 1000, 1001, -1, True, 2.0, 2.5, "3", None]
_STATUSES: list[Any] = [*StepStatus, "SUCCEEDED", "bogus", None, 1]
_PARAMETERS: list[Any] = [
    "same",  # a detached copy of the stored dict
    {"channel": "email", "n": 2, "x": 1.5, "b": True},
    {"channel": "email", "n": 2.0, "x": 1.5, "b": True},  # equal, not the same types
    {"channel": "email", "n": True, "x": 1.5, "b": 1},
    {"channel": "email"},
    {"bad key!": 1},
    {"channel": math.nan},
    {},
    None,
]

_PLAN_FIELDS: dict[str, list[Any]] = {
    "status": _TEXTS,
    "updated_at": _TIMES,
    "next_due_at": _TIMES,
    "activated_at": _TIMES,
    "approved_at": _TIMES,
    "ended_at": _TIMES,
    "created_at": _TIMES,
    "expires_at": _TIMES,
    "approved_by": _TEXTS,
    "bundle_digest": _TEXTS,
    "completion_reason": _TEXTS,
    "evaluation_error": _TEXTS,
    "objective": _TEXTS,
    "owner": _TEXTS,
    "plan_type_version": _NUMBERS,
    "schema_version": ["RevenuePlanV1", "RevenuePlanV2"],
    "version": _NUMBERS,
}
_STEP_FIELDS: dict[str, list[Any]] = {
    "status": _STATUSES,
    "attempts": _NUMBERS,
    "due_at": _TIMES,
    "completed_at": _TIMES,
    "human_approved_at": _TIMES,
    "human_approved_by": _TEXTS,
    "last_error": _TEXTS,
    "skip_reason": _TEXTS,
    "human_touch": [True, False, 1, "yes", None],
    "action_type": ["STEP_9", "step", None],
    "parameters": _PARAMETERS,
}

_plan_changes = st.dictionaries(
    st.sampled_from(sorted(_PLAN_FIELDS)), st.integers(0, 20), max_size=4
).map(lambda d: {k: _PLAN_FIELDS[k][i % len(_PLAN_FIELDS[k])] for k, i in d.items()})
_step_changes = st.dictionaries(
    st.sampled_from(sorted(_STEP_FIELDS)), st.integers(0, 20), max_size=4
).map(lambda d: {k: _STEP_FIELDS[k][i % len(_STEP_FIELDS[k])] for k, i in d.items()})


def _same(mine: Any, full: Any) -> None:
    """Equal values of the same types (a time's zone type too), the same fields set."""
    assert type(mine) is type(full)
    assert mine.model_dump_json() == full.model_dump_json()
    assert mine == full
    assert mine.__pydantic_fields_set__ == full.__pydantic_fields_set__
    assert list(mine.__dict__) == list(full.__dict__)
    for name, value in mine.__dict__.items():
        other = full.__dict__[name]
        assert type(value) is type(other), name
        if isinstance(value, datetime):
            assert type(value.tzinfo) is type(other.tzinfo), name
            assert value.fold == other.fold, name
        if isinstance(value, dict):
            assert [(type(k), type(v)) for k, v in value.items()] == [
                (type(k), type(v)) for k, v in other.items()
            ], name
        if isinstance(value, list):
            assert len(value) == len(other)
            for a, b in zip(value, other, strict=True):
                _same(a, b)


def _check(stored: RevenuePlanV1, update: RevenuePlanV1, version: int = 4) -> RevenuePlanV1 | None:
    mine = stored_update(stored, update, version)
    try:
        full = read_only(codec.stored_form(update, version=version)[0])
    except InvalidUpdate:
        assert mine is None, "an update the round trip refuses was accepted"
        return None
    if mine is not None:
        _same(mine, full)
    return mine


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    plan_changes=_plan_changes,
    step_changes=st.lists(_step_changes, min_size=3, max_size=3),
    shape=st.sampled_from(["same", "append", "reverse", "drop", "kept"]),
    source=st.sampled_from(["shared", "detached"]),
)
def test_field_by_field_equals_the_full_round_trip(
    plan_changes: dict[str, Any], step_changes: list[dict[str, Any]], shape: str, source: str
) -> None:
    stored = _stored_plan()
    # what the store hands out (the stored plan itself), or a caller's deep copy of it
    held = stored if source == "shared" else detached(stored)
    steps = []
    for step, wanted in zip(held.steps, step_changes, strict=True):
        changes = dict(wanted)
        if changes.get("parameters") == "same":
            changes["parameters"] = dict(step.parameters)
        steps.append(replaced(step, changes) if changes else step)
    if shape == "append":
        steps.append(PlanStep(action_type="INJECTED"))
    elif shape == "reverse":
        steps.reverse()
    elif shape == "drop":
        steps = steps[:1]
    elif shape == "kept":
        steps = stored.steps  # the store's own (read-only) step list
    update = replaced(held, {**plan_changes, "steps": steps})
    mine = _check(stored, update)
    if mine is not None:  # it keeps nothing mutable the caller holds
        assert type(mine.steps) is ReadOnlyList
        assert mine.steps is not update.steps or update.steps is stored.steps
        for given_step, kept in zip(update.steps, mine.steps, strict=True):
            assert type(kept.parameters) is ReadOnlyDict
            assert given_step is not kept or any(kept is s for s in stored.steps)


def test_what_the_poll_loop_writes_takes_the_short_way() -> None:
    stored = _stored_plan()
    now = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
    steps = [
        replaced(
            stored.steps[0], {"status": StepStatus.SUCCEEDED, "attempts": 1, "completed_at": now}
        ),
        *stored.steps[1:],
    ]
    update = replaced(
        stored, {"steps": steps, "updated_at": now, "next_due_at": now, "status": "ACTIVE"}
    )
    mine = _check(stored, update)
    assert mine is not None
    assert mine.steps[1] is stored.steps[1]  # unchanged steps are the stored ones
    assert mine.steps[0].parameters is stored.steps[0].parameters
    assert mine.steps[0].completed_at == now
    assert mine.version == 4
    again = replaced(mine, {"updated_at": now + timedelta(minutes=5)})
    later = _check(mine, again, version=5)
    assert later is not None
    assert later.steps is mine.steps  # an unchanged step list is kept whole


@pytest.mark.parametrize(
    ("changes", "step_changes"),
    [
        ({"status": "lower case"}, {}),
        ({"next_due_at": datetime(2025, 3, 1, 12, 0)}, {}),
        ({"evaluation_error": "X" * 2001}, {}),
        ({}, {"last_error": "\ud800"}),
        ({}, {"attempts": 1001}),
        ({}, {"parameters": {"channel": math.nan}}),
        ({}, {"status": "bogus"}),
    ],
)
def test_the_memory_store_refuses_a_bad_change_with_the_round_trips_message(
    changes: dict[str, Any], step_changes: dict[str, Any]
) -> None:
    store = MemoryStore()
    plan = make_plan()
    current = store.create_plan(plan, created(plan))
    steps = [replaced(current.steps[0], step_changes), *current.steps[1:]]
    bad = replaced(current, {**changes, "steps": steps})
    with pytest.raises(InvalidUpdate) as expected:
        codec.stored_form(bad, version=2)
    with pytest.raises(InvalidUpdate) as refused:
        store.update_plan(bad, expected_version=1, entries=[draft(LedgerEvent.UPDATED)])
    assert str(refused.value) == str(expected.value)
    assert store.get_plan(plan.tenant_id, plan.plan_id) == current


def test_every_field_has_its_own_round_trip() -> None:
    """Else every write would silently take the full round trip (slower, never wrong)."""
    assert set(incremental._PLAN.trips) == set(RevenuePlanV1.model_fields)
    assert set(incremental._STEP.trips) == set(PlanStep.model_fields)
