"""The template passes cfn-lint and cdk-nag's AWS Solutions checks; each acknowledgment has a reason."""

from __future__ import annotations

import subprocess
import sys

from tests.deploy.conftest import Synthesized

ACKNOWLEDGED = {
    # rule: the resources it is acknowledged on (logical id prefixes)
    "AwsSolutions-L1": {"PollFunction", "ApiFunction"},
    "AwsSolutions-APIG4": {"HttpApiGET"},
}
"""Every cdk-nag acknowledgment the stack makes; a new one must be added here on purpose."""


def test_cfn_lint_finds_no_error_or_warning(synthesized: Synthesized) -> None:
    template = next(synthesized.outdir.glob("*.template.json"))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            "--format",
            "parseable",
            "--",
            str(template),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_nag_reports_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    assert synthesized.report, "no validation report: was cdk-nag attached?"
    findings = [
        f"{violation['ruleName']} ({violation['severity']}) on "
        + ", ".join(c["constructPath"] for c in violation["violatingConstructs"])
        for plugin in synthesized.report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert findings == []
    assert synthesized.failure is None


def test_every_acknowledgment_is_expected_and_has_a_reason(synthesized: Synthesized) -> None:
    """The ``cdk_nag`` metadata is written by the cdk-nag plugin itself, so finding the
    expected acknowledgments there also proves that the checks ran."""
    found: dict[str, set[str]] = {}
    for name, resource in synthesized.template["Resources"].items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(rule["reason"].split()) >= 8, f"{rule['id']} on {name}: reason too thin"
            found.setdefault(rule["id"], set()).add(name)
    assert set(found) == set(ACKNOWLEDGED)
    for rule, resources in found.items():
        for resource in resources:
            assert any(resource.startswith(p) for p in ACKNOWLEDGED[rule]), (rule, resource)
