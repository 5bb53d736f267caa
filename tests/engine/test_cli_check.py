"""`planpolicy check`, `explain` and `plan` on the example plans of the README."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.engine.conftest import REPO

from planpolicy.cli import main

EXAMPLES = "examples/plans"
ELIGIBLE = f"{EXAMPLES}/renewal_defense_eligible.yaml"
DENIED = f"{EXAMPLES}/renewal_defense_denied.yaml"
ACME = f"{EXAMPLES}/context_acme.yaml"
BUSY = f"{EXAMPLES}/context_acme_busy.yaml"
GOLDEN = Path(__file__).parent / "golden"

Run = tuple[int, str, str]
Cli = Callable[..., Run]


def undigested(text: str) -> str:
    """The text with bundle digests blanked: any policy edit changes the digest."""
    return re.sub(r"sha256:[0-9a-f]{64}", "sha256:<digest>", text)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.chdir(REPO)

    def run(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_an_eligible_plan_exits_0(cli: Cli) -> None:
    code, out, err = cli("check", ELIGIBLE, "--context", ACME)
    assert (code, err) == (0, "")
    assert "decision: can activate" in out
    assert "plan risk: HIGH" in out


def test_a_denied_plan_exits_3_with_every_located_reason(cli: Cli) -> None:
    code, out, err = cli("check", DENIED, "--context", ACME)
    assert (code, err) == (3, "")
    assert undigested(out) == undigested((GOLDEN / "check_denied.text").read_text())


def test_a_conflict_and_an_unmet_eligibility_are_both_reported(cli: Cli) -> None:
    code, out, _ = cli("check", ELIGIBLE, "--context", BUSY)
    assert code == 3
    assert "decision: cannot activate (2 reasons)" in out
    assert "policies/conflict.yaml:9:10: CONFLICT_ACTIVE_PLAN: plan `rd-acme-2025-q2-first`" in out
    assert (
        "plan_types/renewal_defense.yaml:20:13: ELIGIBILITY_NOT_MET: eligibility `renewal_still_open`"
        in out
    )


def test_json_output_carries_codes_rules_locations_and_steps(cli: Cli) -> None:
    code, out, _ = cli("check", DENIED, "--context", ACME, "--format", "json")
    assert code == 3
    doc = json.loads(out)
    assert doc["plan"]["plan_id"] == "rd-acme-2025-q2-draft2"
    decision = doc["decision"]
    assert decision["can_activate"] is False
    assert "trace" not in decision
    by_code = {r["code"]: r for r in decision["reasons"]}
    assert set(by_code) == {
        "STEP_ORDER_VIOLATION",
        "HUMAN_TOUCH_REQUIRED",
        "STEP_PARAMETER_INVALID",
        "STEP_TYPE_NOT_ALLOWED",
        "REQUIRED_STEP_MISSING",
        "EXPIRES_AT_BEYOND_MAX_DURATION",
    }
    order = by_code["STEP_ORDER_VIOLATION"]
    assert order["step"] == "ESCALATE_SUPPORT_RISK"
    assert order["step_id"] == "5d2c1b9a-3e8f-4c71-8a0b-7f6e5d4c3b01"
    assert order["rule"] == {
        "kind": "PlanType",
        "document": "RENEWAL_DEFENSE",
        "version": 1,
        "rule": "ESCALATE_SUPPORT_RISK",
        "file": "plan_types/renewal_defense.yaml",
        "line": 55,
    }
    assert order["location"] == "plan_types/renewal_defense.yaml:55:19"


@pytest.mark.parametrize("argv", [["explain"], ["check", "--explain"]])
def test_explain_shows_each_rule_its_inputs_and_result(cli: Cli, argv: list[str]) -> None:
    code, out, _ = cli(*argv, ELIGIBLE, "--context", BUSY)
    assert code == 3
    assert undigested(out) == undigested((GOLDEN / "explain_busy.text").read_text())


def test_explain_json_has_the_trace(cli: Cli) -> None:
    _, out, _ = cli("explain", ELIGIBLE, "--context", ACME, "--format", "json")
    trace = json.loads(out)["decision"]["trace"]
    assert [t["result"] for t in trace] == ["pass"] * 5 + ["true"] * 3
    assert trace[6]["inputs"] == {"account.renewal.status": "AT_RISK"}
    assert trace[6]["location"] == "plan_types/renewal_defense.yaml:20:13"


def test_a_plan_file_in_json_works_too(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("plan", "show", ELIGIBLE, "--format", "json")
    assert code == 0
    target = tmp_path / "plan.json"
    target.write_text(out)
    assert cli("check", str(target), "--context", ACME)[0] == 0


def test_a_bad_plan_file_exits_2_with_located_problems(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text((REPO / ELIGIBLE).read_text().replace("status: APPROVED", "status: approved"))
    code, out, err = cli("check", str(bad), "--context", ACME)
    assert (code, out) == (2, "")
    assert f"{bad}:9:9: error: plan `status`: string should match pattern" in err
    assert err.rstrip().endswith(f"planpolicy check: error: cannot use the plan file `{bad}`")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now: [", "error: "),
        ("account: {}", "context: `now` (an ISO-8601 time) is required"),
        (
            "now: 2025-03-01T00:00:00Z\ntenant: {tenant_id: evil}",
            "`tenant` cannot be set in a context",
        ),
        ("now: 2025-03-01T00:00:00Z\nactive_plans: [{plan_id: x}]", "`active_plans[0].tenant_id`"),
        ("now: yesterday", "`now` is not an ISO-8601 time: `yesterday`"),
    ],
)
def test_a_bad_context_file_exits_2(cli: Cli, tmp_path: Path, text: str, expected: str) -> None:
    ctx = tmp_path / "ctx.yaml"
    ctx.write_text(text + "\n")
    code, _, err = cli("check", ELIGIBLE, "--context", str(ctx))
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_a_missing_file_exits_2(cli: Cli) -> None:
    code, _, err = cli("check", "nope.yaml", "--context", ACME)
    assert code == 2
    assert "nope.yaml:1:1: error: cannot read file" in err


def test_a_bundle_that_does_not_compile_exits_1(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: planpolicy/v1\nkind: Nonsense\n")
    code, out, err = cli("check", ELIGIBLE, "--context", ACME, "--policies", str(tmp_path))
    assert (code, out) == (1, "")
    assert "does not compile" in err


def test_policies_can_be_given_explicitly(cli: Cli) -> None:
    argv = ["--policies", "policies", "--policies", "plan_types"]
    assert cli("check", ELIGIBLE, "--context", ACME, *argv)[0] == 0


def test_usage_errors_exit_2(cli: Cli) -> None:
    with pytest.raises(SystemExit) as caught:
        cli("check", ELIGIBLE)
    assert caught.value.code == 2


def test_plan_new_writes_a_draft_that_the_gate_checks(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli(
        "plan",
        "new",
        "--plan-type",
        "RENEWAL_DEFENSE",
        "--account",
        "acme",
        "--tenant",
        "northwind",
        "--owner",
        "alice",
        "--now",
        "2025-03-01T09:00:00Z",
    )
    assert code == 0
    target = tmp_path / "new.yaml"
    target.write_text(out)
    code, text, _ = cli("check", str(target), "--context", ACME)
    assert code == 3
    assert "PLAN_NOT_ACTIVATABLE: a plan in status `DRAFT` cannot activate" in text
    assert text.count(": PLAN_") == 1  # a draft is otherwise complete: steps, human touch, expiry
    approved = tmp_path / "approved.yaml"
    approved.write_text(out.replace("status: DRAFT", "status: APPROVED"))
    assert cli("check", str(approved), "--context", ACME)[0] == 0


def test_plan_new_refuses_unknown_names(cli: Cli) -> None:
    base = ["plan", "new", "--account", "a", "--tenant", "t", "--owner", "o"]
    code, _, err = cli(*base, "--plan-type", "UPSELL")
    assert code == 2 and "unknown plan type `UPSELL`" in err
    code, _, err = cli(
        *base, "--plan-type", "RENEWAL_DEFENSE", "--steps", "PREP_RENEWAL_BRIEF,NOPE"
    )
    assert code == 2 and "`RENEWAL_DEFENSE` has no step `NOPE`" in err


def test_plan_show_prints_the_derived_risk(cli: Cli) -> None:
    code, out, _ = cli("plan", "show", DENIED)
    assert code == 0
    assert "risk: HIGH (the highest risk of its steps)" in out
    (line,) = [line for line in out.splitlines() if "SEND_DISCOUNT_OFFER" in line]
    assert "not allowed" in line


def test_the_readme_shows_what_the_cli_prints(cli: Cli) -> None:
    readme = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```text\n")[1:]]
    shown = [b for b in blocks if b.startswith(("$ planpolicy check ", "$ planpolicy explain "))]
    assert len(shown) == 3
    for block in shown:
        command, _, rest = block.partition("\n")
        printed = rest.split("$ echo $?")[0]
        code, out, _ = cli(*command.removeprefix("$ planpolicy ").split())
        assert undigested(out) == undigested(printed), command
        if "$ echo $?" in rest:
            assert rest.split("$ echo $?\n")[1].strip() == str(code)
