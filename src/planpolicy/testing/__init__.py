"""Policy unit tests written in YAML: given a plan and a context, what must be decided.

Usage from Python::

    from planpolicy.testing import run_tests, text_report
    run = run_tests(["tests/policies"], bundle)
    print(text_report(run)); run.ok

The file format is described in :mod:`planpolicy.testing.spec`; the runner's
rules (unknown names are errors) in :mod:`planpolicy.testing.runner`.
"""

from __future__ import annotations

from planpolicy.testing.report import REPORTS, junit_report, text_report
from planpolicy.testing.runner import (
    CaseResult,
    SuiteResult,
    TestRun,
    discover_tests,
    merge_patch,
    run_tests,
)
from planpolicy.testing.spec import PolicyTestFile

__all__ = [
    "REPORTS",
    "CaseResult",
    "PolicyTestFile",
    "SuiteResult",
    "TestRun",
    "discover_tests",
    "junit_report",
    "merge_patch",
    "run_tests",
    "text_report",
]
