"""Every example scenario runs with its expectations, as `make test` promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from planpolicy import PolicyBundle
from planpolicy.cli import main
from planpolicy.scenario import load_scenario
from planpolicy.simulate import run

from .conftest import EXAMPLES, POLICY_PATHS

SCENARIOS = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_at_least_three_examples() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"renewal_saved", "support_escalation_expiry", "conflicting_plan"} <= names
    assert "meeting_odds" in names  # the Monte Carlo demo


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_meets_its_expectations(path: Path, bundle: PolicyBundle) -> None:
    scenario = load_scenario(path, bundle)
    assert scenario.expectations, f"{path.name} states no expectations"
    result = run(scenario, bundle)
    failed = [f"{r.expectation.text}: {r.actual}" for r in result.expectations if not r.passed]
    assert not failed
    assert not scenario.warnings


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_runs_from_the_command_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", str(path), "--no-progress"]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"scenario `{path.stem}`" in out
    assert "0 failed" in out


def test_the_saved_renewal_reads_as_a_story(bundle: PolicyBundle) -> None:
    scenario = load_scenario(EXAMPLES / "renewal_saved.yaml", bundle)
    result = run(scenario, bundle)
    story = [(scenario.when(i.time), i.event) for i in result.timeline if i.plan_id == "rd-acme"]
    assert story[:4] == [
        ("day 0 00:00", "created"),
        ("day 0 11:30", "approved"),
        ("day 0 11:30", "gate_decision"),
        ("day 0 11:30", "activated"),
    ]
    assert story[-1] == ("day 41 16:30", "completed")  # the hourly recheck after 16:20
    plan = result.plan("rd-acme")
    assert plan.status == "COMPLETED"
    assert plan.completion_reason == "objective_met"
