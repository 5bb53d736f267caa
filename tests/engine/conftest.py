"""Fixtures for engine tests: a private copy of the bundled policies to break."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from planpolicy.diagnostics import Diagnostic
from planpolicy.lint import run_lint

REPO = Path(__file__).resolve().parents[2]


class PolicyTree:
    """A copy of policies/ and plan_types/ in a temp dir, edited by text replacement."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(REPO / "policies", root / "policies")
        shutil.copytree(REPO / "plan_types", root / "plan_types")

    @property
    def paths(self) -> list[str]:
        return [str(self.root / "policies"), str(self.root / "plan_types")]

    def path(self, rel: str) -> Path:
        return self.root / rel

    def replace(self, rel: str, old: str, new: str, count: int = 1) -> None:
        target = self.root / rel
        text = target.read_text()
        assert old in text, f"{old!r} not in {rel}"
        target.write_text(text.replace(old, new, count))

    def write(self, rel: str, text: str) -> Path:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def line_of(self, rel: str, needle: str) -> int:
        for number, line in enumerate((self.root / rel).read_text().splitlines(), start=1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} not in {rel}")

    def col_of(self, rel: str, needle: str) -> int:
        line = (self.root / rel).read_text().splitlines()[self.line_of(rel, needle) - 1]
        return line.index(needle) + 1

    def lint(self) -> list[Diagnostic]:
        return list(run_lint(self.paths).diagnostics)


@pytest.fixture
def tree(tmp_path: Path) -> PolicyTree:
    return PolicyTree(tmp_path)


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def at(diagnostics: list[Diagnostic], code: str) -> list[tuple[int, int]]:
    """(line, column) of every diagnostic with ``code``."""
    return [
        (d.location.line, d.location.column) for d in diagnostics if d.code == code and d.location
    ]


Finder = Callable[[list[Diagnostic], str], list[tuple[int, int]]]
