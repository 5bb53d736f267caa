"""Plans and steps are frozen records; a sealed plan (``read_only``) cannot change at all."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from planpolicy.plan import (
    PlanStep,
    ReadOnlyDict,
    ReadOnlyList,
    RevenuePlanV1,
    StepStatus,
    dump_plan,
    read_only,
    replaced,
)
from support.plans import make_plan


def _plan() -> RevenuePlanV1:
    plan = make_plan(steps=2)
    step = replaced(plan.steps[0], {"parameters": {"channel": "email", "n": 2}})
    return replaced(plan, {"steps": [step, plan.steps[1]]})


def test_assigning_a_field_raises() -> None:
    plan = _plan()
    with pytest.raises(ValidationError, match="frozen"):
        plan.status = "ACTIVE"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        plan.steps[0].status = StepStatus.SKIPPED  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        del plan.objective
    changed = plan.model_copy(update={"status": "ACTIVE"})
    assert (plan.status, changed.status) == ("DRAFT", "ACTIVE")
    assert replaced(plan, {"status": "ACTIVE"}) == changed


def test_a_plans_own_lists_and_dicts_stay_ordinary() -> None:
    plan = _plan()
    assert type(plan.steps) is list
    assert type(plan.steps[0].parameters) is dict
    plan.steps[0].parameters["n"] = 3  # the caller's own plan: nothing shares it
    assert plan.steps[0].parameters["n"] == 3


def test_sealing_makes_the_step_list_and_parameters_read_only() -> None:
    plan = _plan()
    sealed = read_only(plan)
    assert sealed is plan
    assert type(plan.steps) is ReadOnlyList
    assert all(type(step.parameters) is ReadOnlyDict for step in plan.steps)
    steps: Any = plan.steps
    parameters: Any = plan.steps[0].parameters
    for change in (
        lambda: steps.append(PlanStep(action_type="X")),
        lambda: steps.extend([]),
        lambda: steps.insert(0, steps[0]),
        lambda: steps.__setitem__(0, steps[1]),
        lambda: steps.__delitem__(0),
        lambda: steps.__iadd__([]),
        lambda: steps.__imul__(1),
        lambda: steps.remove(steps[0]),
        lambda: steps.sort(key=str),
        steps.pop,
        steps.reverse,
        steps.clear,
        lambda: parameters.__setitem__("n", 3),
        lambda: parameters.__delitem__("n"),
        lambda: parameters.update(n=3),
        lambda: parameters.setdefault("m", 1),
        lambda: parameters.pop("n"),
        lambda: parameters.__ior__({"n": 3}),
        parameters.popitem,
        parameters.clear,
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert [s.action_type for s in plan.steps] == ["STEP_0", "STEP_1"]
    assert plan.steps[0].parameters == {"channel": "email", "n": 2}
    assert read_only(plan) is plan  # sealing again keeps what is sealed
    assert type(plan.steps) is ReadOnlyList


def test_a_sealed_plan_reads_and_serialises_as_an_ordinary_one() -> None:
    plain = _plan()
    sealed = read_only(plain.model_copy(deep=True))
    assert sealed == plain
    assert sealed.steps == plain.steps
    assert isinstance(sealed.steps, list)
    assert isinstance(sealed.steps[0].parameters, dict)
    assert sealed.model_dump_json() == plain.model_dump_json()
    assert sealed.model_dump() == plain.model_dump()
    assert type(sealed.model_dump()["steps"]) is list
    assert type(sealed.model_dump()["steps"][0]["parameters"]) is dict
    assert dump_plan(sealed, fmt="yaml") == dump_plan(plain, fmt="yaml")
    assert json.loads(json.dumps(sealed.steps[0].parameters)) == {"channel": "email", "n": 2}
    assert RevenuePlanV1.model_validate_json(sealed.model_dump_json()) == plain
    assert RevenuePlanV1.model_validate(sealed.model_dump()) == plain


def test_what_is_made_from_a_sealed_plan_is_ordinary_and_mutable() -> None:
    sealed = read_only(_plan())
    steps = sealed.steps
    parameters = sealed.steps[0].parameters
    for made in (
        list(steps),
        steps.copy(),
        steps[:],
        copy.copy(steps),
        copy.deepcopy(steps),
        pickle.loads(pickle.dumps(steps)),
    ):
        assert type(made) is list
        assert made == steps
    for made_dict in (
        dict(parameters),
        parameters.copy(),
        parameters | {},
        copy.copy(parameters),
        copy.deepcopy(parameters),
        pickle.loads(pickle.dumps(parameters)),
    ):
        assert type(made_dict) is dict
        assert made_dict == parameters
    for plan in (
        sealed.model_copy(deep=True),
        copy.deepcopy(sealed),
        pickle.loads(pickle.dumps(sealed)),
    ):
        assert plan == sealed
        assert type(plan.steps) is list
        assert type(plan.steps[0].parameters) is dict
        plan.steps.append(PlanStep(action_type="MINE"))
        plan.steps[0].parameters["mine"] = 1
    assert len(sealed.steps) == 2
    assert "mine" not in sealed.steps[0].parameters
    deep = copy.deepcopy([steps, steps])  # one copy per sealed list, as for a plain list
    assert deep[0] is deep[1]
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump(parameters)  # only plain data is dumped: dump the plan's model_dump()
