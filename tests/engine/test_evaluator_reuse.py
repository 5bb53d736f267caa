"""The evaluator answers again from the same facts without evaluating, only when the plan cannot matter.

An objective whose plan type's rules read nothing of the plan depends on the
facts alone: evaluated once per facts object, its answer is given again for
the same facts. A plan type whose rules read ``plan`` is evaluated every time
(the plan may have changed between two evaluations with the same facts).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.engine.builders import NOW, RENEWAL, acme_facts, bundle, eligible_plan
from tests.engine.conftest import REPO

from planpolicy.cel import CompiledExpr
from planpolicy.compiler import load_bundle
from planpolicy.evaluator import StateEvaluator
from planpolicy.facts import reads_plan
from planpolicy.model import PolicyBundle


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The source of every CEL expression evaluated during the test."""
    seen: list[str] = []
    real = CompiledExpr.evaluate

    def counted(self: CompiledExpr, activation: object) -> object:
        seen.append(self.source)
        return real(self, activation)  # type: ignore[arg-type]

    monkeypatch.setattr(CompiledExpr, "evaluate", counted)
    yield seen


def test_the_same_facts_are_evaluated_once(evaluations: list[str]) -> None:
    evaluator = StateEvaluator(bundle())
    plan = eligible_plan(status="ACTIVE", activated_at=NOW)
    assert not reads_plan(bundle(), bundle().plan_types["RENEWAL_DEFENSE"])
    facts = acme_facts(
        account={"account_id": "acme", "renewal_date": RENEWAL, "renewal": {"status": "RENEWED"}}
    )
    first = evaluator.evaluate(plan, facts, facts.now)
    again = evaluator.evaluate(plan.model_copy(update={"objective": "other"}), facts, facts.now)
    assert first == again
    assert first.met == ("renewal_closed_won",)
    assert len(evaluations) == 1
    fresh = acme_facts(account=dict(facts.account))
    assert evaluator.evaluate(plan, fresh, fresh.now) == first
    assert len(evaluations) == 2  # other facts: evaluated again


def test_errors_are_given_again_for_the_same_facts(evaluations: list[str]) -> None:
    evaluator = StateEvaluator(bundle())
    plan = eligible_plan(status="ACTIVE", activated_at=NOW)
    facts = acme_facts(account={"account_id": "acme", "renewal": {"status": 5}})
    first = evaluator.evaluate(plan, facts, facts.now)
    again = evaluator.evaluate(plan, facts, facts.now)
    assert first.errors
    assert again == first


def _plan_reading_bundle(tmp_path: Path) -> PolicyBundle:
    source = (REPO / "plan_types" / "renewal_defense.yaml").read_text()
    changed = source.replace(
        'expr: account.renewal.status == "RENEWED"', "expr: plan.age_days >= 10", 1
    )
    assert changed != source
    (tmp_path / "renewal_defense.yaml").write_text(changed)
    return load_bundle([REPO / "policies", tmp_path])


def test_an_objective_reading_the_plan_is_evaluated_every_time(
    tmp_path: Path, evaluations: list[str]
) -> None:
    reading = _plan_reading_bundle(tmp_path)
    assert reads_plan(reading, reading.plan_types["RENEWAL_DEFENSE"])
    evaluator = StateEvaluator(reading)
    facts = acme_facts()
    young = eligible_plan(status="ACTIVE", activated_at=NOW)
    old = eligible_plan(status="ACTIVE", activated_at=NOW - timedelta(days=20))
    assert evaluator.evaluate(young, facts, facts.now).status is None
    assert evaluator.evaluate(old, facts, facts.now).status == "COMPLETED"
    assert len(evaluations) == 2
