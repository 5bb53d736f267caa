"""`planpolicy test`: YAML policy tests pass, fail with expected vs actual, or are errors."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.engine.builders import bundle
from tests.engine.conftest import REPO

from planpolicy import schemagen
from planpolicy.cli import main
from planpolicy.testing import junit_report, merge_patch, run_tests, text_report

Run = tuple[int, str, str]
Cli = Callable[..., Run]

HEADER = """\
apiVersion: planpolicy/v1
kind: PolicyTest
metadata: {name: scratch}
plans:
  p:
    plan_id: p1
    tenant_id: northwind
    account_id: acme
    plan_type: RENEWAL_DEFENSE
    plan_type_version: 1
    status: APPROVED
    owner: alice
    created_by: paul
    created_at: "2025-02-27T10:00:00Z"
    updated_at: "2025-02-27T10:00:00Z"
    expires_at: "2025-06-15T00:00:00Z"
    steps:
      - {action_type: PREP_RENEWAL_BRIEF}
      - {action_type: REQUEST_RENEWAL_MEETING}
contexts:
  c:
    now: "2025-03-01T09:00:00Z"
    account: {account_id: acme, renewal_date: "2025-05-15T00:00:00Z", renewal: {status: OPEN}}
    signals: {open_p1_tickets: 0}
cases:
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.chdir(REPO)

    def run(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def scratch(tmp_path: Path, cases: str) -> Path:
    path = tmp_path / "scratch.yaml"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(cases), "  "))
    return path


def one_case(tmp_path: Path, cases: str) -> tuple[str, str]:
    (suite,) = run_tests([scratch(tmp_path, cases)], bundle()).suites
    (case,) = suite.cases
    return case.status, case.message


def test_the_bundled_renewal_defense_tests_pass(cli: Cli) -> None:
    code, out, err = cli("test")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "tests/policies/renewal_defense.yaml (renewal_defense)"
    assert out.rstrip().endswith("passed, 0 failed, 0 errors in 1 file")
    assert "FAIL" not in out and "ERROR" not in out


def test_the_bundled_tests_cover_every_gate_reason_for_the_plan_type() -> None:
    text = (REPO / "tests/policies/renewal_defense.yaml").read_text()
    gate_codes = {
        "PLAN_TYPE_UNKNOWN", "PLAN_TYPE_VERSION_MISMATCH", "PLAN_NOT_ACTIVATABLE",
        "STEP_TYPE_NOT_ALLOWED", "STEP_DUPLICATED", "REQUIRED_STEP_MISSING",
        "STEP_ORDER_VIOLATION", "HUMAN_TOUCH_REQUIRED", "STEP_PARAMETER_INVALID",
        "ELIGIBILITY_NOT_MET", "RULE_EVALUATION_ERROR", "CONTEXT_INVALID",
        "EXPIRES_AT_NOT_IN_FUTURE", "EXPIRES_AT_BEYOND_MAX_DURATION", "CONFLICT_ACTIVE_PLAN",
        "AUTHORITY_ROLE_NOT_ALLOWED", "AUTHORITY_SELF_APPROVAL", "AUTHORITY_NOT_HUMAN",
    }  # fmt: skip
    assert {code for code in gate_codes if code not in text} == set()


def test_a_wrong_expectation_fails_showing_expected_and_actual(tmp_path: Path, cli: Cli) -> None:
    path = scratch(
        tmp_path,
        """
        - name: expects a conflict that is not there
          plan: p
          context: c
          expect: {can_activate: false, reasons: [CONFLICT_ACTIVE_PLAN]}
        """,
    )
    code, out, _ = cli("test", str(path))
    assert code == 1
    assert f"  FAIL  expects a conflict that is not there  ({path}:" in out
    assert "        the gate decided otherwise" in out
    assert "        expected: can_activate=false reasons={CONFLICT_ACTIVE_PLAN}" in out
    assert "        actual:   can_activate=true reasons={}" in out
    assert out.rstrip().endswith("0 passed, 1 failed, 0 errors in 1 file")


def test_other_reasons_than_expected_fail(tmp_path: Path) -> None:
    status, message = one_case(
        tmp_path,
        """
        - name: too few codes listed
          plan: p
          plan_patch: {status: DRAFT, plan_type_version: 2}
          context: c
          expect: {can_activate: false, reasons: [PLAN_NOT_ACTIVATABLE]}
        """,
    )
    assert (status, message) == ("fail", "the gate gave other reasons")


def test_a_reason_expected_at_another_step_fails(tmp_path: Path) -> None:
    status, message = one_case(
        tmp_path,
        """
        - name: the order violation is the meeting's
          plan: p
          plan_patch:
            steps: [{action_type: REQUEST_RENEWAL_MEETING}, {action_type: PREP_RENEWAL_BRIEF}]
          context: c
          expect:
            can_activate: false
            reasons: [{code: STEP_ORDER_VIOLATION, step: PREP_RENEWAL_BRIEF}]
        """,
    )
    assert status == "fail"
    assert "`STEP_ORDER_VIOLATION` at step `PREP_RENEWAL_BRIEF`" in message


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "{name: x, plan: p, context: c, expect: {can_activate: false, reasons: [CONFLICT]}}",
            "unknown reason code `CONFLICT`",
        ),
        (
            "{name: x, plan: p, plan_patch: {plan_type: RENEWAL_DEFENCE}, context: c,"
            " expect: {can_activate: false, reasons: [ELIGIBILITY_NOT_MET]}}",
            "unknown plan type `RENEWAL_DEFENCE`",
        ),
        (
            "{name: x, plan: p, plan_patch: {steps: [{action_type: PREP_RENEWAL_BREIF}]},"
            " context: c, expect: {can_activate: false, reasons: [REQUIRED_STEP_MISSING]}}",
            "unknown step `PREP_RENEWAL_BREIF` for plan type `RENEWAL_DEFENSE`",
        ),
        (
            "{name: x, plan: p, context: c,"
            " expect: {can_activate: false, reasons: [{code: STEP_DUPLICATED, step: BRIEF}]}}",
            "unknown step `BRIEF` for plan type `RENEWAL_DEFENSE`",
        ),
        (
            "{name: x, plan: p, plan_patch: {status: DRAFT},"
            " transition: {trigger: approve, actor: {user_id: m, roles: [revenue_manger]}},"
            " expect: {allowed: false}}",
            "unknown role `revenue_manger`: no grant of the AuthorityPolicy names it",
        ),
        (
            "{name: x, plan: p, transition: {trigger: launch}, expect: {allowed: false}}",
            "unknown trigger `launch` in lifecycle `default`",
        ),
        (
            "{name: x, plan: p, transition: {trigger: activate}, context: c,"
            " expect: {allowed: true, to: LIVE}}",
            "unknown state `LIVE` in lifecycle `default`",
        ),
        (
            "{name: x, plan: q, context: c, expect: {can_activate: true}}",
            "unknown plan `q` (known: `p`)",
        ),
        (
            "{name: x, plan: p, expect: {can_activate: true}}",
            "a gate case needs a `context`",
        ),
        (
            "{name: x, plan: p, context: c, expect: {can_activate: false}}",
            "a case that expects a denial must list its reason codes",
        ),
        (
            "{name: x, plan: p, plan_patch: {status: DRAFT}, transition: {trigger: approve},"
            " expect: {allowed: false}}",
            "`approve` is guarded by `authority`: give the case an `actor`",
        ),
        (
            "{name: x, plan: p, transition: {trigger: activate}, expect: {allowed: false}}",
            "`activate` is guarded by the `gate`: give the case a `context`",
        ),
        (
            "{name: x, plan: p, plan_patch: {expires_at: soon}, context: c,"
            " expect: {can_activate: true}}",
            "invalid plan: plan `expires_at`: input should be a valid datetime",
        ),
        (
            "{name: x, plan: p, context: c, context_patch: {plan: {status: ACTIVE}},"
            " expect: {can_activate: true}}",
            "invalid context: context: `plan` cannot be set in a context: it comes from the plan",
        ),
    ],
)
def test_a_case_naming_something_unknown_is_an_error_not_a_pass(
    tmp_path: Path, case: str, message: str
) -> None:
    status, got = one_case(tmp_path, f"- {case}\n")
    assert status == "error"
    assert got.startswith(message), got


def test_unknown_names_make_the_command_fail(tmp_path: Path, cli: Cli) -> None:
    path = scratch(
        tmp_path,
        "- {name: x, plan: p, context: c, expect: {can_activate: true, reasons: [NOPE]}}\n",
    )
    code, out, _ = cli("test", str(path))
    assert code == 1
    assert f"  ERROR x  ({path}:" in out
    assert "        error: unknown reason code `NOPE`" in out


def test_an_unknown_plan_type_or_step_may_be_named_when_the_case_expects_that_reason(
    tmp_path: Path,
) -> None:
    status, _ = one_case(
        tmp_path,
        """
        - name: unknown plan type on purpose
          plan: p
          plan_patch: {plan_type: UPSELL_PUSH}
          context: c
          expect: {can_activate: false, reasons: [PLAN_TYPE_UNKNOWN]}
        """,
    )
    assert status == "pass"


def test_duplicate_case_names_are_errors(tmp_path: Path) -> None:
    path = scratch(
        tmp_path,
        """
        - {name: same, plan: p, context: c, expect: {can_activate: true}}
        - {name: same, plan: p, context: c, expect: {can_activate: true}}
        """,
    )
    (suite,) = run_tests([path], bundle()).suites
    assert [c.status for c in suite.cases] == ["pass", "error"]
    assert suite.cases[1].message == "duplicate case name `same`"


def test_a_malformed_test_file_is_one_located_error(tmp_path: Path) -> None:
    path = scratch(
        tmp_path, "- {name: x, plan: p, context: c, expect: {can_activate: true, allowed: true}}\n"
    )
    run = run_tests([path], bundle())
    (case,) = run.suites[0].cases
    assert case.status == "error"
    assert "extra inputs are not permitted [PP601]" in case.message
    assert case.location is not None and case.location.file == str(path)
    assert not run.ok


def test_hostile_yaml_is_refused_like_policy_files(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(8)
        )
    )
    (case,) = run_tests([path], bundle()).suites[0].cases
    assert case.status == "error"
    assert "[PP106]" in case.message


def test_junit_report_for_ci(tmp_path: Path, cli: Cli) -> None:
    path = scratch(
        tmp_path,
        """
        - {name: passes, plan: p, context: c, expect: {can_activate: true}}
        - {name: fails, plan: p, context: c, expect: {can_activate: false, reasons: [CONFLICT_ACTIVE_PLAN]}}
        - {name: errs, plan: p, context: c, expect: {can_activate: true, reasons: [NOPE]}}
        """,
    )
    out_file = tmp_path / "report.xml"
    code, out, _ = cli("test", str(path), "--format", "junit", "--out", str(out_file))
    assert (code, out) == (1, "")
    root = ET.fromstring(out_file.read_text())
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == (
        "testsuites",
        "3",
        "1",
        "1",
    )
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases["passes"]) == []
    failure = cases["fails"].find("failure")
    assert failure is not None and failure.get("message") == "the gate decided otherwise"
    assert "expected: can_activate=false reasons={CONFLICT_ACTIVE_PLAN}" in (failure.text or "")
    error = cases["errs"].find("error")
    assert error is not None and error.get("message") == "unknown reason code `NOPE`"
    assert cases["errs"].get("file") == str(path)


def test_reports_are_pure_functions_of_the_run() -> None:
    run = run_tests([REPO / "tests/policies"], bundle())
    assert run.ok
    assert text_report(run) == text_report(run)
    assert ET.fromstring(junit_report(run)).get("failures") == "0"


def test_no_tests_or_missing_paths_do_not_pass(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("test", str(tmp_path))
    assert code == 1 and "no policy test files" in err
    code, _, err = cli("test", str(tmp_path / "absent"))
    assert code == 2 and "no such file or directory" in err


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "v"}
    patch = {"a": {"b": None, "d": 3}, "l": [3], "k": None}
    assert merge_patch(target, patch) == {"a": {"c": 2, "d": 3}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "v"}


def test_the_test_file_schema_is_generated_and_accepts_the_bundled_tests() -> None:
    import json

    import yaml
    from jsonschema import Draft202012Validator

    assert "policy_test.v1.json" in schemagen.generate()
    schema = json.loads((REPO / "schemas/policy_test.v1.json").read_text())
    data = yaml.safe_load((REPO / "tests/policies/renewal_defense.yaml").read_text())
    assert list(Draft202012Validator(schema).iter_errors(data)) == []
