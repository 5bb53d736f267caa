"""One test per lint rule: a snippet, the expected code and (line, column)."""

from __future__ import annotations

from tests.engine.conftest import PolicyTree, at, codes

from planpolicy.lint.registry import RULES

RD = "plan_types/renewal_defense.yaml"
LC = "policies/lifecycle.yaml"
AUTH = "policies/authority.yaml"


def test_bundled_policies_pass_every_rule(tree: PolicyTree) -> None:
    assert tree.lint() == []


def test_rule_codes_are_unique_and_documented() -> None:
    seen = [rule.RULE.code for rule in RULES]
    assert len(seen) == len(set(seen))
    for rule in RULES:
        doc = rule.__doc__ or ""
        assert doc.startswith(f"{rule.RULE.code} {rule.RULE.name}:")
        assert "Passes" in doc and "Fails" in doc


def test_pp501_high_risk_step_without_human_touch(tree: PolicyTree) -> None:
    tree.replace(RD, "      humanTouch: true\n", "")
    diags = tree.lint()
    line = tree.line_of(RD, "risk: HIGH")
    assert at(diags, "PP501") == [(line, tree.col_of(RD, "HIGH"))]
    assert codes(diags) == ["PP501"]


def test_pp502_objective_never_true(tree: PolicyTree) -> None:
    tree.replace(RD, 'expr: account.renewal.status == "RENEWED"', 'expr: "1 > 2"')
    diags = tree.lint()
    assert at(diags, "PP502") == [(tree.line_of(RD, '"1 > 2"'), tree.col_of(RD, '"1 > 2"'))]


def test_pp502_not_reported_when_another_condition_can_hold(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        '        expr: account.renewal.status == "RENEWED"\n',
        '        expr: account.renewal.status == "RENEWED"\n      - id: never\n        expr: "false"\n',
    )
    assert "PP502" not in codes(tree.lint())


def test_pp503_step_never_runs(tree: PolicyTree) -> None:
    tree.replace(RD, "when: signals.open_p1_tickets > 0", "when: 1 > 2")
    diags = tree.lint()
    assert at(diags, "PP503") == [(tree.line_of(RD, "when: 1 > 2"), tree.col_of(RD, "1 > 2"))]
    assert diags[0].severity.value == "warning"


def test_pp504_unused_lifecycle(tree: PolicyTree) -> None:
    tree.write(
        "policies/legacy.yaml",
        tree.path(LC).read_text().replace("name: default", "name: legacy"),
    )
    diags = tree.lint()
    assert [(d.code, d.location.file.endswith("legacy.yaml")) for d in diags if d.location] == [
        ("PP504", True)
    ]


def test_pp505_approval_without_authority_and_activation_without_gate(tree: PolicyTree) -> None:
    tree.replace(LC, "      to: APPROVED\n      guards: [authority]\n", "      to: APPROVED\n")
    tree.replace(LC, "      to: ACTIVE\n      guards: [gate]\n", "      to: ACTIVE\n")
    diags = tree.lint()
    assert at(diags, "PP505") == [
        (tree.line_of(LC, "trigger: approve"), tree.col_of(LC, "trigger: approve") + 9),
        (tree.line_of(LC, "trigger: activate"), tree.col_of(LC, "trigger: activate") + 9),
    ]


def test_pp506_unknown_grant_action(tree: PolicyTree) -> None:
    tree.replace(AUTH, "    - action: pause\n", "    - action: pasue\n")
    diags = tree.lint()
    assert at(diags, "PP506") == [(tree.line_of(AUTH, "pasue"), tree.col_of(AUTH, "pasue"))]
    assert diags[0].hint == "did you mean `pause`?"


def test_pp507_duration_exceeds_policy(tree: PolicyTree) -> None:
    tree.replace(RD, "maxDurationDays: 120", "maxDurationDays: 365")
    diags = tree.lint()
    assert at(diags, "PP507") == [(tree.line_of(RD, "maxDurationDays"), tree.col_of(RD, "365"))]
