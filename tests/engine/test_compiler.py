"""The compile pipeline: load -> schema -> compile, each stage's diagnostics."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from tests.engine.conftest import REPO, PolicyTree, at, codes

from planpolicy.compiler import BundleError, compile_bundle, load_bundle

BUNDLED = [str(REPO / "policies"), str(REPO / "plan_types")]
RD = "plan_types/renewal_defense.yaml"


def test_bundled_policies_compile_clean() -> None:
    result = compile_bundle(BUNDLED)
    assert result.diagnostics == ()
    bundle = result.bundle
    assert bundle is not None
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 71
    assert bundle.versions() == {
        "AuthorityPolicy/default": 1,
        "ConflictPolicy/default": 1,
        "Lifecycle/default": 1,
        "PlanType/RENEWAL_DEFENSE": 1,
        "RiskPolicy/default": 1,
    }
    rd = bundle.plan_type("RENEWAL_DEFENSE")
    assert rd is not None
    assert rd.step_order[0] == "PREP_RENEWAL_BRIEF"
    assert set(rd.step_order) == {
        "PREP_RENEWAL_BRIEF",
        "REQUEST_RENEWAL_MEETING",
        "ESCALATE_SUPPORT_RISK",
    }
    assert rd.max_duration == timedelta(days=120)
    assert rd.steps["ESCALATE_SUPPORT_RISK"].human_touch
    assert rd.steps["ESCALATE_SUPPORT_RISK"].retry.on_exhausted == "abort"
    assert bundle.risk.levels == ("LOW", "MEDIUM", "HIGH")
    assert bundle.lifecycles["default"].terminal == {"COMPLETED", "ABORTED", "EXPIRED"}
    assert rd.roots == {"account", "now", "signals"}


def test_bundle_is_immutable() -> None:
    bundle = load_bundle(BUNDLED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.digest = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        bundle.plan_types["X"] = bundle.plan_types["RENEWAL_DEFENSE"]  # type: ignore[index]


def test_digest_ignores_comments_but_not_content(tree: PolicyTree) -> None:
    before = load_bundle(tree.paths).digest
    tree.replace(RD, "spec:\n", "# a comment\nspec:\n")
    assert load_bundle(tree.paths).digest == before
    tree.replace(RD, "maxDurationDays: 120", "maxDurationDays: 100")
    assert load_bundle(tree.paths).digest != before


def test_load_bundle_raises_with_every_diagnostic(tree: PolicyTree) -> None:
    tree.replace(RD, "risk: LOW", "risk: LOWEST")
    tree.replace(RD, "lifecycle: default", "lifecycle: standard")
    with pytest.raises(BundleError) as info:
        load_bundle(tree.paths)
    assert sorted(codes(list(info.value.diagnostics))) == ["PP302", "PP302"]
    assert "policy bundle does not compile" in str(info.value)


def test_unknown_reference_points_at_the_value_with_a_hint(tree: PolicyTree) -> None:
    tree.replace(RD, "risk: MEDIUM", "risk: MEDUIM")
    diags = compile_bundle(tree.paths).diagnostics
    line = tree.line_of(RD, "risk: MEDUIM")
    assert at(list(diags), "PP302") == [(line, tree.col_of(RD, "MEDUIM"))]
    assert diags[0].hint == "did you mean `MEDIUM`?"
    assert "unknown risk level `MEDUIM`" in diags[0].message


def test_unknown_step_in_ordering(tree: PolicyTree) -> None:
    tree.replace(RD, "after: [PREP_RENEWAL_BRIEF]", "after: [PREP_BRIEF]")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP302") == [
        (tree.line_of(RD, "after: [PREP_BRIEF]"), tree.col_of(RD, "PREP_BRIEF]"))
    ]


def test_ordering_cycle(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "      required: true\n      retry:\n        limit: 3\n        backoffMinutes: 60",
        "      required: true\n      after: [REQUEST_RENEWAL_MEETING]\n      retry:\n        limit: 3\n"
        "        backoffMinutes: 60",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP303"]
    assert "cycle" in diags[0].message and "`PREP_RENEWAL_BRIEF`" in diags[0].message


def test_duplicate_plan_type(tree: PolicyTree) -> None:
    tree.write("plan_types/copy.yaml", tree.path(RD).read_text())
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP301"]
    assert diags[0].location is not None and diags[0].location.file.endswith("renewal_defense.yaml")
    assert diags[0].hint is not None and "copy.yaml" in diags[0].hint


def test_unreachable_state_and_terminal_with_outgoing(tree: PolicyTree) -> None:
    lc = "policies/lifecycle.yaml"
    tree.replace(lc, "    - name: EXPIRED\n", "    - name: EXPIRED\n    - name: LIMBO\n")
    tree.replace(
        lc,
        "    - trigger: complete\n      from: [ACTIVE]",
        "    - trigger: complete\n      from: [ACTIVE, ABORTED]",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP304") == [(tree.line_of(lc, "name: LIMBO"), tree.col_of(lc, "LIMBO"))]
    assert at(diags, "PP305") == [
        (tree.line_of(lc, "from: [ACTIVE, ABORTED]"), tree.col_of(lc, "ABORTED]"))
    ]


def test_singleton_kinds(tree: PolicyTree) -> None:
    tree.path("policies/risk.yaml").unlink()
    tree.write(
        "policies/conflict2.yaml",
        tree.path("policies/conflict.yaml").read_text().replace("name: default", "name: other"),
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert "PP306" in codes(diags)  # no RiskPolicy
    assert "PP307" in codes(diags)  # two ConflictPolicies


def test_conflict_scope_must_include_tenant(tree: PolicyTree) -> None:
    tree.replace(
        "policies/conflict.yaml",
        "scope: [tenant_id, account_id, plan_type]",
        "scope: [account_id, plan_type]",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP309"]


def test_schema_errors_are_located(tree: PolicyTree) -> None:
    tree.replace(RD, "maxDurationDays: 120", "maxDurationDays: lots")
    tree.replace(
        RD,
        "  completeWhenAllStepsDone: false\n",
        "  completeWhenAllStepsDone: false\n  colour: blue\n",
    )
    tree.replace(RD, "onExhausted: skip", "onExhausted: retry_forever")
    tree.replace("policies/risk.yaml", "  humanTouchFrom: HIGH\n", "")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP203") == [
        (tree.line_of(RD, "maxDurationDays: lots"), tree.col_of(RD, "lots"))
    ]
    assert at(diags, "PP202") == [(tree.line_of(RD, "colour: blue"), 3)]
    assert at(diags, "PP206") == [
        (tree.line_of(RD, "retry_forever"), tree.col_of(RD, "retry_forever"))
    ]
    assert [d.message for d in diags if d.code == "PP204"] == [
        "missing required field `humanTouchFrom` in `spec`"
    ]


def test_unknown_kind_and_api_version(tree: PolicyTree) -> None:
    tree.write(
        "policies/x.yaml", "apiVersion: planpolicy/v1\nkind: PlanTyp\nmetadata: {}\nspec: {}\n"
    )
    tree.write("policies/y.yaml", "apiVersion: planpolicy/v9\nkind: PlanType\n")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert [(d.code, d.location.line if d.location else 0) for d in diags] == [
        ("PP205", 2),
        ("PP205", 1),
    ]
    assert diags[0].hint == "did you mean `PlanType`?"


def test_cel_error_inside_block_scalar_points_at_the_line(tree: PolicyTree) -> None:
    tree.replace(
        RD, "account.renewal_date - now <= duration", "account.renewl_date - now <= duration"
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert at(diags, "PP403") == [(tree.line_of(RD, "renewl_date"), tree.col_of(RD, "renewl_date"))]
    assert diags[0].hint == "did you mean `renewal_date`?"


def test_cel_error_inside_macro(tree: PolicyTree) -> None:
    tree.replace(
        RD,
        "when: signals.open_p1_tickets > 0",
        "when: plan.steps.exists(s, plan.steps[s].atempts > 2)",
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP403"]
    assert "atempts" in diags[0].message


def test_non_boolean_condition_and_bad_timing(tree: PolicyTree) -> None:
    tree.replace(RD, "when: signals.open_p1_tickets > 0", "when: signals.open_p1_tickets")
    tree.replace(
        RD, 'notBefore: account.renewal_date - duration("2160h")', "notBefore: account.arr"
    )
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert codes(diags) == ["PP405", "PP405"]


def test_every_problem_in_one_run(tree: PolicyTree) -> None:
    tree.replace(RD, "risk: LOW", "risk: LOWEST")
    tree.replace(RD, "when: signals.open_p1_tickets > 0", "when: signals.open_p2_tickets > 0")
    tree.replace("policies/conflict.yaml", "onViolation: reject", "onViolation: queue")
    tree.write("plan_types/broken.yaml", "kind: [unclosed\n")
    diags = list(compile_bundle(tree.paths).diagnostics)
    assert sorted(codes(diags)) == ["PP101", "PP206", "PP302", "PP403"]


def test_context_extension_declares_new_fields(tree: PolicyTree) -> None:
    tree.replace(RD, "when: signals.open_p1_tickets > 0", "when: signals.nps < -20")
    assert codes(list(compile_bundle(tree.paths).diagnostics)) == ["PP403"]
    tree.write(
        "policies/nps.yaml",
        "apiVersion: planpolicy/v1\nkind: ContextExtension\n"
        "metadata: {name: nps, version: 1, description: NPS survey results}\n"
        "spec:\n  properties:\n    signals:\n      properties:\n        nps: {type: integer}\n",
    )
    assert compile_bundle(tree.paths).diagnostics == ()


def test_invalid_context_extension(tree: PolicyTree) -> None:
    tree.write(
        "policies/bad.yaml",
        "apiVersion: planpolicy/v1\nkind: ContextExtension\n"
        "metadata: {name: bad, version: 1, description: broken}\n"
        "spec:\n  properties:\n    signals:\n      type: 12\n",
    )
    assert "PP308" in codes(list(compile_bundle(tree.paths).diagnostics))


def test_missing_path_is_a_diagnostic(tmp_path: object) -> None:
    diags = list(compile_bundle(["/nonexistent/policies"]).diagnostics)
    assert [(d.code, d.message) for d in diags] == [
        ("PP108", "no such file or directory `/nonexistent/policies`")
    ]


def test_parallel_reading_gives_the_same_report(
    tree: PolicyTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planpolicy import readahead

    template = tree.path(RD).read_text()
    for i in range(40):
        text = template.replace("RENEWAL_DEFENSE", f"PT_{i}")
        if i % 7 == 0:
            text = text.replace("risk: LOW", "risk: LOWEST")
        if i % 11 == 0:
            text = text.replace("kind: PlanType", "kind: [PlanType")
        tree.write(f"plan_types/pt_{i:02d}.yaml", text)
    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    sequential = compile_bundle(tree.paths, jobs=1)
    parallel = compile_bundle(tree.paths, jobs=2)
    assert parallel.diagnostics == sequential.diagnostics
    assert len(parallel.diagnostics) == 9  # pt_00 has both faults; the syntax error hides the other
    assert [d.name for d in parallel.documents] == [d.name for d in sequential.documents]


def test_bundle_digest_is_the_canonical_json_of_its_documents(tree: PolicyTree) -> None:
    import hashlib
    import json

    import yaml

    bundle = compile_bundle(tree.paths).bundle
    assert bundle is not None
    docs = []
    for path in sorted(Path(tree.root).rglob("*.yaml")):
        for data in yaml.safe_load_all(path.read_text()):
            if data:
                docs.append([data["kind"], data["metadata"]["name"], data])
    docs.sort(key=lambda d: (d[0], d[1]))
    text = json.dumps(docs, sort_keys=True, separators=(",", ":"), default=str)
    assert bundle.digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    tree.replace(RD, "maxDurationDays: 120", "maxDurationDays: 119")
    changed = compile_bundle(tree.paths).bundle
    assert changed is not None and changed.digest != bundle.digest


def test_linting_never_computes_the_bundle_digest(
    tree: PolicyTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planpolicy import model

    def refuse(contents: object) -> str:
        raise AssertionError("the digest was computed")

    monkeypatch.setattr(model, "content_digest", refuse)
    assert tree.lint() == []
    bundle = compile_bundle(tree.paths).bundle
    assert bundle is not None
    with pytest.raises(AssertionError, match="digest was computed"):
        _ = bundle.digest
