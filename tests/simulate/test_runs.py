"""Monte Carlo runs are deterministic per seed; policy comparison finds the first divergence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from planpolicy import PolicyBundle, load_bundle
from planpolicy.cli import main
from planpolicy.scenario import load_scenario
from planpolicy.simulate import SimOptions, compare, monte_carlo, run
from planpolicy.simworld import uniform

from .conftest import EXAMPLES, POLICY_PATHS, REPO

ODDS = EXAMPLES / "meeting_odds.yaml"


def test_draws_depend_on_seed_and_key_only() -> None:
    assert uniform("7/0", "p:s:1") == uniform("7/0", "p:s:1")
    assert uniform("7/0", "p:s:1") != uniform("7/1", "p:s:1")
    draws = [uniform("0/0", f"key-{i}") for i in range(2000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert 0.45 < sum(d < 0.5 for d in draws) / len(draws) < 0.55


def test_monte_carlo_is_deterministic_for_a_seed(bundle: PolicyBundle) -> None:
    scenario = load_scenario(ODDS, bundle)
    first = monte_carlo(scenario, bundle, 12, SimOptions(seed=7))
    again = monte_carlo(scenario, bundle, 12, SimOptions(seed=7))
    other = monte_carlo(scenario, bundle, 12, SimOptions(seed=8))
    assert [(p.ends, p.days_to_end) for p in first.plans] == [
        (p.ends, p.days_to_end) for p in again.plans
    ]
    assert [(p.ends, p.days_to_end) for p in first.plans] != [
        (p.ends, p.days_to_end) for p in other.plans
    ]
    for dist in first.plans:
        assert sum(dist.ends.values()) == 12
    assert first.ok and first.expectations[0][1] == 12


def test_run_i_of_a_monte_carlo_is_a_single_run_with_that_draw(bundle: PolicyBundle) -> None:
    scenario = load_scenario(ODDS, bundle)
    spread = monte_carlo(scenario, bundle, 3, SimOptions(seed=5))
    labels = {p.plan_id: dict.fromkeys(p.ends) for p in spread.plans}
    for index in range(3):
        single = run(scenario, bundle, SimOptions(seed=5, run=index))
        for plan in single.plans:
            label = plan.status + (f" ({plan.completion_reason})" if plan.completion_reason else "")
            assert label in labels[plan.plan_id]


def test_the_odds_show_in_the_distribution(bundle: PolicyBundle) -> None:
    scenario = load_scenario(ODDS, bundle)
    spread = monte_carlo(scenario, bundle, 60, SimOptions(seed=1))
    ends = spread.overall.ends
    assert sum(ends.values()) == 180
    assert ends.get("COMPLETED (objective_met)", 0) > 120  # 0.6 per attempt, three attempts
    assert ends.get("PAUSED", 0) > 0  # three failed requests (0.4 ** 3)


def test_monte_carlo_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", str(ODDS), "--runs", "5", "--seed", "3", "--no-progress"]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "5 runs, seed 3" in out
    assert "all plans (15 plan runs):" in out
    assert "pass  5/5" in out


def _policies(tmp_path: Path) -> Path:
    for name in ("policies", "plan_types"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def test_compare_finds_where_a_changed_retry_rule_diverges(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    root = _policies(tmp_path)
    plan_type = root / "plan_types" / "renewal_defense.yaml"
    text = plan_type.read_text()
    old = "        backoffMinutes: 1440\n        onExhausted: pause\n"
    assert old in text
    plan_type.write_text(
        text.replace(old, "        backoffMinutes: 1440\n        onExhausted: skip\n").replace(
            "  version: 1\n", "  version: 2\n", 1
        )
    )
    changed = load_bundle([str(root / "policies"), str(root / "plan_types")])
    path = EXAMPLES / "support_escalation_expiry.yaml"
    scenario = load_scenario(path, bundle)
    result = compare(scenario, bundle, changed, right_scenario=load_scenario(path, changed))
    [divergence] = result.divergences
    assert divergence.plan_id == "rd-globex"
    assert divergence.at is not None
    assert scenario.when(divergence.at) == "day 3 09:00"
    assert divergence.left is not None and divergence.left.event == "paused"
    assert divergence.right is not None and divergence.right.event == "skipped"
    assert divergence.left_end == "EXPIRED (expired)"
    assert result.left.versions["PlanType/RENEWAL_DEFENSE"] == 1
    assert result.right.versions["PlanType/RENEWAL_DEFENSE"] == 2
    assert not result.right.ok  # its expectations were written for the first policies


def test_compare_with_the_same_policies_finds_nothing(bundle: PolicyBundle, tmp_path: Path) -> None:
    root = _policies(tmp_path)
    same = load_bundle([str(root / "policies"), str(root / "plan_types")])
    scenario = load_scenario(EXAMPLES / "conflicting_plan.yaml", bundle)
    assert compare(scenario, bundle, same).divergences == ()


def test_compare_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _policies(tmp_path)
    authority = root / "policies" / "authority.yaml"
    text = authority.read_text()
    assert "ownerMay: [pause, resume]" in text
    authority.write_text(text.replace("ownerMay: [pause, resume]", "ownerMay: [pause]"))
    argv = ["simulate", str(EXAMPLES / "support_escalation_expiry.yaml"), "--no-progress"]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    argv += ["--compare-policies", str(root / "policies")]
    argv += ["--compare-policies", str(root / "plan_types")]
    assert main(argv) == 0  # the scenario's expectations hold under the first policies
    out = capsys.readouterr().out
    assert "1 plan diverge, 0 plans run the same course" in out
    assert "rd-globex: first differs at day 4 14:00" in out
    assert "other:    day 4 14:00 resume refused by alice" in out
