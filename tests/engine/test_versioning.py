"""``lint --base``: a changed document must bump its version."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.engine.conftest import PolicyTree, at

from planpolicy.lint import run_lint

RD = "plan_types/renewal_defense.yaml"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tree: PolicyTree) -> PolicyTree:
    _git(tree.root, "init", "-q")
    _git(tree.root, "add", ".")
    _git(tree.root, "commit", "-qm", "base")
    return tree


def test_change_without_bump_is_flagged(repo: PolicyTree) -> None:
    repo.replace(RD, "maxDurationDays: 120", "maxDurationDays: 90")
    diags = list(run_lint(repo.paths, base="HEAD").diagnostics)
    assert at(diags, "PP510") == [
        (repo.line_of(RD, "version: 1"), repo.col_of(RD, "version: 1") + len("version: "))
    ]
    assert diags[0].hint == "set `metadata.version` to 2"


def test_change_with_bump_passes(repo: PolicyTree) -> None:
    repo.replace(RD, "maxDurationDays: 120", "maxDurationDays: 90")
    repo.replace(RD, "  version: 1\n", "  version: 2\n")
    assert list(run_lint(repo.paths, base="HEAD").diagnostics) == []


def test_comment_and_description_changes_need_no_bump(repo: PolicyTree) -> None:
    repo.replace(RD, "spec:\n", "# reviewed\nspec:\n")
    repo.replace(
        RD, "description: Defend an at-risk renewal", "description: Protect an at-risk renewal"
    )
    assert list(run_lint(repo.paths, base="HEAD").diagnostics) == []


def test_new_file_needs_no_bump(repo: PolicyTree) -> None:
    text = repo.path("policies/lifecycle.yaml").read_text().replace("name: default", "name: other")
    repo.write("policies/other.yaml", text)
    assert [d.code for d in run_lint(repo.paths, base="HEAD").diagnostics] == ["PP504"]


def test_unknown_ref_is_an_error(repo: PolicyTree) -> None:
    diags = list(run_lint(repo.paths, base="no-such-ref").diagnostics)
    assert [(d.code, d.message) for d in diags] == [
        ("PP511", "cannot compare with `no-such-ref`: not a git commit")
    ]
