"""Golden output per format, SARIF validity, CLI exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from tests.engine.conftest import REPO, PolicyTree

from planpolicy.cli import main
from planpolicy.diagnostics import Diagnostic, Location, Severity
from planpolicy.lint.formats import format_github

GOLDEN = Path(__file__).parent / "golden"
DATA = REPO / "tests" / "data"
RD = "plan_types/renewal_defense.yaml"


def _broken(tree: PolicyTree) -> None:
    tree.replace(
        RD, "account.renewal_date - now <= duration", "account.renewl_date - now <= duration"
    )
    tree.replace(RD, "      humanTouch: true\n", "")
    tree.replace("policies/authority.yaml", "    - action: pause\n", "    - action: pasue\n")


def _lint(tree: PolicyTree, fmt: str, *extra: str) -> tuple[int, str]:
    """Run the CLI from inside the tree so paths in the output are relative and stable."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "planpolicy.cli",
            "lint",
            "--format",
            fmt,
            *extra,
            "policies",
            "plan_types",
        ],
        cwd=tree.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "GITHUB_ACTIONS": ""},
    )
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout


@pytest.mark.parametrize("fmt", ["text", "github", "json", "sarif"])
def test_golden_output(tree: PolicyTree, fmt: str) -> None:
    _broken(tree)
    code, out = _lint(tree, fmt)
    assert code == 1
    golden = GOLDEN / f"lint.{fmt}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(out)
    assert out == golden.read_text()


def test_sarif_is_valid_against_the_official_schema(tree: PolicyTree) -> None:
    _broken(tree)
    _, out = _lint(tree, "sarif")
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    errors = list(Draft7Validator(schema).iter_errors(json.loads(out)))
    assert errors == []
    results = json.loads(out)["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"PP403", "PP501", "PP506"}


def test_clean_bundle_exits_0_and_warnings_fail_only_under_strict(tree: PolicyTree) -> None:
    assert _lint(tree, "text")[0] == 0
    tree.replace(RD, "when: signals.open_p1_tickets > 0", "when: 1 > 2")
    assert _lint(tree, "text")[0] == 0
    assert _lint(tree, "text", "--strict")[0] == 1


def test_limit_caps_the_report(tree: PolicyTree) -> None:
    _broken(tree)
    code, out = _lint(tree, "json", "--limit", "1")
    report = json.loads(out)
    assert code == 1
    assert len(report["diagnostics"]) == 1
    assert report["summary"]["dropped"] == 2


def test_github_escapes_properties_and_message() -> None:
    d = Diagnostic("PP101", "bad: 50%\nnext", Location("a,b:c.yaml", 3, 4), Severity.ERROR)
    assert (
        format_github([d])
        == "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=PP101::bad: 50%25%0Anext\n"
    )


def test_auto_format_is_github_inside_actions(
    tree: PolicyTree, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _broken(tree)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["lint", *tree.paths]) == 1
    assert capsys.readouterr().out.startswith("::error file=")


def test_out_writes_a_file(tree: PolicyTree, tmp_path: Path) -> None:
    out = tmp_path / "lint.json"
    assert main(["lint", "--format", "json", "--out", str(out), *tree.paths]) == 0
    assert json.loads(out.read_text())["summary"]["errors"] == 0
