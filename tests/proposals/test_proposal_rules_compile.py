"""The `proposal:` section of a plan type: compiled, type-checked, every problem located."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.conftest import PolicyTree, at, codes
from tests.proposals.conftest import RD

from planpolicy import PolicyBundle
from planpolicy.compiler import compile_bundle
from planpolicy.diagnostics import Severity
from planpolicy.lint import run_lint


def test_bundled_proposal_rules_compile(bundle: PolicyBundle) -> None:
    rd = bundle.plan_type("RENEWAL_DEFENSE")
    assert rd is not None and rd.proposal is not None
    proposal = rd.proposal
    assert [c.id for c in proposal.when] == ["renewal_due_soon", "renewal_open", "health_below_60"]
    assert list(proposal.include_steps) == ["ESCALATE_SUPPORT_RISK"]
    assert proposal.expires_in_days == 90
    assert proposal.roots == {"account", "signals", "now"}
    assert set(proposal.parameters) == {"PREP_RENEWAL_BRIEF"}
    # Proposal rules never leak into what the gate and evaluator read.
    assert rd.roots == {"account", "now", "signals"}
    assert all(c.id != "health_below_60" for c in rd.conditions())


def test_expires_in_days_defaults_to_the_plan_types_maximum(tree: PolicyTree) -> None:
    tree.replace(RD, "    expiresInDays: 90\n", "")
    bundle = compile_bundle(tree.paths).bundle
    assert bundle is not None
    rd = bundle.plan_type("RENEWAL_DEFENSE")
    assert rd is not None and rd.proposal is not None
    assert timedelta(days=rd.proposal.expires_in_days) == rd.max_duration


def test_a_misspelled_field_in_a_placeholder_is_located(tree: PolicyTree) -> None:
    tree.replace(
        RD, "audience: ${account.name} executive", "audience: Dear ${account.nmae} executive"
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP403") == [(tree.line_of(RD, "account.nmae"), tree.col_of(RD, "nmae}"))]
    assert diags[0].hint == "did you mean `name`?"


def test_a_misspelled_field_in_a_when_rule_is_located(tree: PolicyTree) -> None:
    tree.replace(RD, "expr: account.health_score < 60", "expr: account.health < 60")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP403") == [
        (tree.line_of(RD, "account.health < 60"), tree.col_of(RD, "health < 60"))
    ]


def test_a_proposal_rule_cannot_read_the_plan(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "expr: account.health_score < 60",
        'expr: account.health_score < 60 && plan.status == "DRAFT"',
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP402"]
    assert at(diags, "PP402") == [(tree.line_of(RD, "plan.status"), tree.col_of(RD, "plan.status"))]
    assert "no plan exists yet" in diags[0].message


def test_include_steps_names_known_optional_steps(tree: PolicyTree) -> None:
    tree.replace(RD, "ESCALATE_SUPPORT_RISK: signals", "ESCALATE_SUPORT_RISK: signals")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP302"]
    assert diags[0].hint == "did you mean `ESCALATE_SUPPORT_RISK`?"
    assert diags[0].location is not None
    assert diags[0].location.line == tree.line_of(RD, "ESCALATE_SUPORT_RISK:")


def test_an_include_condition_must_be_boolean(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "ESCALATE_SUPPORT_RISK: signals.open_p1_tickets > 0",
        "ESCALATE_SUPPORT_RISK: signals.open_p1_tickets",
    )
    assert "PP405" in codes(list(compile_bundle(tree.paths).diagnostics))


def test_including_a_required_step_is_a_warning(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "      ESCALATE_SUPPORT_RISK: signals.open_p1_tickets > 0\n",
        "      ESCALATE_SUPPORT_RISK: signals.open_p1_tickets > 0\n      PREP_RENEWAL_BRIEF: 'true'\n",
    )
    result = compile_bundle(tree.paths)
    assert codes(list(result.diagnostics)) == ["PP311"]
    assert result.diagnostics[0].severity == Severity.WARNING
    assert result.bundle is not None


def test_proposals_cannot_outlive_the_plan_type(tree: PolicyTree) -> None:
    tree.replace(RD, "expiresInDays: 90", "expiresInDays: 121")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP310") == [(tree.line_of(RD, "expiresInDays: 121"), tree.col_of(RD, "121"))]
    assert diags[0].hint == "use at most 120"


def test_template_syntax_problems(tree: PolicyTree) -> None:
    tree.replace(
        RD, "objective: Renew ${account.name} before", "objective: Renew ${} ${account.name before"
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    line = tree.line_of(RD, "objective: Renew")
    assert at(diags, "PP401") == [
        (line, tree.col_of(RD, "${}")),
        (line, tree.col_of(RD, "${account.name before")),
    ]
    assert {d.message for d in diags} == {
        "empty placeholder `${}`",
        "placeholder `${` is not closed with `}`",
    }


def test_a_placeholder_gives_one_value(tree: PolicyTree) -> None:
    tree.replace(RD, "objective: Renew ${account.name}", "objective: Renew ${[account.name]}")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP406"]
    assert "not a single value" in diags[0].message


def test_parameters_name_declared_text_parameters(tree: PolicyTree) -> None:
    tree.replace(RD, "        audience: ${account.name}", "        audince: ${account.name}")
    tree.replace(
        RD,
        "      PREP_RENEWAL_BRIEF:\n        audince",
        "      PREP_BRIEF:\n        x: y\n      PREP_RENEWAL_BRIEF:\n        audince",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP302", "PP302"]
    assert {d.message for d in diags} == {
        "unknown step `PREP_BRIEF`",
        "unknown parameter `audince`",
    }


def test_a_non_text_parameter_cannot_be_a_template(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "        audience:\n          type: string\n          maxLength: 200",
        "        audience:\n          type: integer",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP406"]
    assert "text templates" in diags[0].message


def test_duplicate_when_ids(tree: PolicyTree) -> None:
    tree.replace(RD, "- id: renewal_open", "- id: renewal_due_soon")
    assert codes(list(compile_bundle(tree.paths).diagnostics)) == ["PP301"]


def test_unknown_proposal_field_is_a_schema_error(tree: PolicyTree) -> None:
    tree.replace(RD, "    expiresInDays: 90\n", "    expiresInDays: 90\n    autoApprove: true\n")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert [d.code for d in diags if d.is_error] == ["PP202"]


def test_lint_reports_proposal_problems_with_the_others(tree: PolicyTree) -> None:
    tree.replace(RD, "expr: account.health_score < 60", "expr: account.health_score < 60.5")
    tree.replace(RD, "risk: MEDIUM", "risk: MEDUIM")
    report = run_lint(tree.paths)
    assert sorted(d.code for d in report.diagnostics) == ["PP302", "PP406"]
