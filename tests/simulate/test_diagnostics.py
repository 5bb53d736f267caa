"""Invalid scenarios get located diagnostics, like policy files: code, file:line:column, hint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from planpolicy import PolicyBundle
from planpolicy.cli import main
from planpolicy.diagnostics import Diagnostic
from planpolicy.scenario import ScenarioError, load_scenario

from .conftest import ACME, POLICY_PATHS, REPO

Write = Callable[[str], Path]


def problems(path: Path, bundle: PolicyBundle) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, bundle)
    return list(caught.value.diagnostics)


def where(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [
        (d.code, d.location.line if d.location else 0, d.location.column if d.location else 0)
        for d in diagnostics
    ]


def test_the_base_scenario_is_valid(write_scenario: Write, bundle: PolicyBundle) -> None:
    scenario = load_scenario(write_scenario(ACME), bundle)
    assert [p.plan.plan_id for p in scenario.plans] == ["rd-acme"]
    assert [a.do for a in scenario.actions] == ["approve"]


def test_unknown_field_is_located_with_a_suggestion(
    write_scenario: Write, bundle: PolicyBundle
) -> None:
    text = ACME.replace("signals: {open_p1_tickets: 2}", "signal: {open_p1_tickets: 2}")
    [problem] = problems(write_scenario(text), bundle)
    assert where([problem]) == [("PP202", 11, 7)]
    assert problem.message == "unknown field `signal` in `spec.accounts.acme`"
    assert problem.hint == "did you mean `signals`?"


def test_value_not_allowed_and_wrong_type(write_scenario: Write, bundle: PolicyBundle) -> None:
    text = ACME.replace("horizon_days: 30", "horizon_days: thirty") + (
        "  executor:\n    - {action: PREP_RENEWAL_BRIEF, outcome: explode}\n"
    )
    found = problems(write_scenario(text), bundle)
    assert where(found) == [("PP203", 6, 17), ("PP206", 16, 45)]
    assert any("must be one of `succeed`, `fail`, `timeout`, `pending`" in d.message for d in found)


def test_references_are_checked_with_suggestions(
    write_scenario: Write, bundle: PolicyBundle
) -> None:
    text = ACME + (
        "  actions:\n"
        "    - {at: day 1, plan: rd-acm, do: pause, by: alice}\n"
        "    - {at: day 1, plan: rd-acme, do: approve_step, step: ESCALATE_SUPORT_RISK, by: mia}\n"
        "    - {at: day 1, plan: rd-acme, do: pause, by: bob}\n"
        "  expect:\n"
        "    - {plan: rd-acme, ledger: activatd}\n"
    )
    found = problems(write_scenario(text), bundle)
    assert where(found) == [
        ("PP701", 16, 25),
        ("PP701", 17, 58),
        ("PP701", 18, 49),
        ("PP701", 20, 31),
    ]
    hints = [d.hint for d in found]
    assert hints[0] == "did you mean `rd-acme`?"
    assert hints[1] == "did you mean `ESCALATE_SUPPORT_RISK`?"
    assert hints[3] == "did you mean `activated`?"
    assert found[2].message == "unknown person `bob`"


def test_times_outside_the_horizon_and_bad_times(
    write_scenario: Write, bundle: PolicyBundle
) -> None:
    text = ACME + (
        "  timeline:\n"
        "    - {at: day 31, set: {signals.open_p1_tickets: 0}}\n"
        '    - {at: "day 2 24:00", set: {signals.open_p1_tickets: 0}}\n'
        "    - {at: 2025-12-31T00:00:00Z, set: {signals.open_p1_tickets: 0}}\n"
        "    - {at: {day: 3, hour: 7}, set: {open_p1_tickets: 0}}\n"
    )
    found = problems(write_scenario(text), bundle)
    assert where(found) == [
        ("PP703", 16, 12),
        ("PP704", 17, 12),
        ("PP703", 18, 12),
        ("PP704", 19, 37),
    ]
    assert found[0].message == "`day 31 00:00` is outside the scenario (day 0 to day 30)"
    assert "starts with `account.` or `signals.`" in found[3].message


def test_field_combinations(write_scenario: Write, bundle: PolicyBundle) -> None:
    text = ACME + (
        "  executor:\n"
        "    - {action: REQUEST_RENEWAL_MEETING, outcome: pending}\n"
        "    - {action: REQUEST_RENEWAL_MEETING, attempt: 1, outcome: fail, otherwise: {outcome: succeed}}\n"
        "  expect:\n"
        "    - {plan: rd-acme, status: COMPLETED, step: PREP_RENEWAL_BRIEF}\n"
        "    - {plan: rd-acme, step: PREP_RENEWAL_BRIEF}\n"
        "    - {plan: rd-acme, status: ACTIVE, contains: x}\n"
    )
    found = problems(write_scenario(text), bundle)
    messages = [d.message for d in found]
    assert messages == [
        "a `pending` outcome needs `pending_for`",
        "`otherwise` needs a `probability`",
        "an expectation names exactly one of `status`, `step`, `ledger` or `refused`",
        "a step expectation needs `runs`, `attempts` or `step_status`",
        "`contains` does not go with `status`",
    ]
    assert all(d.code == "PP704" for d in found)


def test_plans_need_one_source_and_unique_ids(write_scenario: Write, bundle: PolicyBundle) -> None:
    text = ACME + (
        "    - {id: rd-acme, plan_type: RENEWAL_DEFENSE, account: acme}\n"
        "    - {id: other, plan_type: RENEWAL_DEFENSE, file: x.yaml, account: acme}\n"
        "    - {id: third, plan_type: RENEWAL_DEFENSE_V2, account: acme}\n"
    )
    found = problems(write_scenario(text), bundle)
    assert [(d.code, d.location.line if d.location else 0) for d in found] == [
        ("PP702", 15),
        ("PP704", 16),
        ("PP701", 17),
    ]
    assert found[2].hint == "did you mean `RENEWAL_DEFENSE`?"


def test_a_broken_plan_file_is_reported_in_that_file(
    write_scenario: Write, bundle: PolicyBundle, tmp_path: Path
) -> None:
    (tmp_path / "plan.yaml").write_text("plan_id: x\ntenant_id: t\nsteps: []\n")
    text = ACME + "    - {file: plan.yaml}\n"
    found = problems(write_scenario(text), bundle)
    files = {Path(d.location.file).name for d in found if d.location}
    assert files == {"plan.yaml", "scenario.yaml"}
    assert found[-1].code == "PP705" or any(d.code == "PP705" for d in found)


def test_yaml_errors_and_wrong_kind(write_scenario: Write, bundle: PolicyBundle) -> None:
    found = problems(write_scenario(ACME.replace("horizon_days: 30", "horizon_days: [30")), bundle)
    assert found[0].code == "PP101"
    found = problems(write_scenario(ACME.replace("kind: Scenario", "kind: PolicyTest")), bundle)
    assert where(found) == [("PP205", 2, 7)]


def test_an_account_without_facts_is_a_warning(write_scenario: Write, bundle: PolicyBundle) -> None:
    text = ACME + "    - {id: rd-x, plan_type: RENEWAL_DEFENSE, account: initech}\n"
    scenario = load_scenario(write_scenario(text), bundle)
    assert [d.code for d in scenario.warnings] == ["PP706"]


def test_cli_prints_located_problems_and_exits_2(
    write_scenario: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(ACME.replace("signals: {", "signal: {"))
    argv = ["simulate", str(path)]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{path}:11:7: error: unknown field `signal` in `spec.accounts.acme` [PP202]" in err
    assert "  hint: did you mean `signals`?" in err
    assert "    11 |       signal: {open_p1_tickets: 2}" in err
    assert f"cannot run the scenario `{path}`" in err


def test_cli_usage_errors(write_scenario: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(ACME)
    assert main(["simulate", str(path), "--tick", "5 minutes"]) == 2
    assert "`--tick`" in capsys.readouterr().err
    assert main(["simulate", str(path), "--runs", "0"]) == 2
    assert main(["simulate", "no-such-file.yaml"]) == 2
    assert "no such scenario file `no-such-file.yaml`" in capsys.readouterr().err


def test_plan_sources_and_time_forms(write_scenario: Write, bundle: PolicyBundle) -> None:
    plan_file = REPO / "examples" / "plans" / "renewal_defense_eligible.yaml"
    text = ACME + (
        f"    - {{file: {plan_file}, id: from-file, account: acme, at: {{day: 1, hour: 6}}}}\n"
        "    - id: inline\n"
        "      at: 2026-01-07T12:00:00+02:00\n"
        "      plan:\n"
        "        {tenant_id: x, account_id: acme, plan_type: RENEWAL_DEFENSE, plan_type_version: 1,\n"
        "         owner: alice, created_by: alice, created_at: 2026-01-01T00:00:00Z,\n"
        "         updated_at: 2026-01-01T00:00:00Z, expires_at: 2026-03-01T00:00:00Z,\n"
        "         steps: [{action_type: PREP_RENEWAL_BRIEF}]}\n"
        "    - {plan_type: RENEWAL_DEFENSE, accounts: [acme, globex], at: day 2 07:30}\n"
    )
    scenario = load_scenario(write_scenario(text), bundle)
    by_id = {p.plan.plan_id: p for p in scenario.plans}
    assert list(by_id) == [
        "rd-acme",
        "from-file",
        "inline",
        "renewal-defense-acme",
        "renewal-defense-globex",
    ]
    assert scenario.when(by_id["from-file"].at) == "day 1 06:00"
    assert scenario.when(by_id["inline"].at) == "day 2 10:00"
    assert scenario.when(by_id["renewal-defense-globex"].at) == "day 2 07:30"
    assert {p.plan.tenant_id for p in scenario.plans} == {"sim"}
    assert by_id["from-file"].plan.steps[0].step_id.hex.startswith("0b6f6f2e")  # from the file
    proposed = by_id["renewal-defense-acme"].plan
    assert [s.action_type for s in proposed.steps] == [
        "PREP_RENEWAL_BRIEF",
        "REQUEST_RENEWAL_MEETING",
        "ESCALATE_SUPPORT_RISK",
    ]
    assert [s.human_touch for s in proposed.steps] == [False, False, True]
    again = load_scenario(write_scenario(text), bundle)
    assert [s.step_id for s in again.plans[3].plan.steps] == [s.step_id for s in proposed.steps]
    assert [d.code for d in scenario.warnings] == ["PP706"]  # globex has no facts
