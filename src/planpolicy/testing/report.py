"""Policy test reports: ``text`` for people, ``junit`` (JUnit XML) for CI dashboards."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree as ET

from planpolicy.testing.runner import CaseResult, TestRun

__all__ = ["REPORTS", "junit_report", "text_report"]

_LABEL = {"pass": "PASS ", "fail": "FAIL ", "error": "ERROR"}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _case_lines(case: CaseResult) -> list[str]:
    where = f"  ({case.location})" if case.location and case.status != "pass" else ""
    lines = [f"  {_LABEL[case.status]} {case.name}{where}"]
    if case.status == "error":
        lines.append(f"        error: {case.message}")
    elif case.status == "fail":
        lines.append(f"        {case.message}")
        lines.append(_indent(case.expected, "        expected: ").replace("\n", "\n          "))
        lines.append(_indent(case.actual, "        actual:   ").replace("\n", "\n          "))
    return lines


def text_report(run: TestRun) -> str:
    """Every case with PASS / FAIL / ERROR, expected vs actual for failures, a summary."""
    lines: list[str] = []
    for suite in run.suites:
        lines.append(f"{suite.file} ({suite.name})")
        for case in suite.cases:
            lines.extend(_case_lines(case))
    passed, failed, errors = run.count("pass"), run.count("fail"), run.count("error")
    files = len(run.suites)
    lines.append(
        f"{passed} passed, {failed} failed, {errors} error{'s' if errors != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}"
    )
    return "\n".join(lines) + "\n"


def junit_report(run: TestRun) -> str:
    """JUnit XML: one ``testsuite`` per file, one ``testcase`` per case."""
    root = ET.Element(
        "testsuites",
        name="planpolicy",
        tests=str(sum(len(s.cases) for s in run.suites)),
        failures=str(run.count("fail")),
        errors=str(run.count("error")),
    )
    for suite in run.suites:
        node = ET.SubElement(
            root,
            "testsuite",
            name=suite.name,
            file=suite.file,
            tests=str(len(suite.cases)),
            failures=str(suite.count("fail")),
            errors=str(suite.count("error")),
            time=f"{sum(c.seconds for c in suite.cases):.6f}",
        )
        for case in suite.cases:
            attrs = {"classname": suite.name, "name": case.name, "time": f"{case.seconds:.6f}"}
            if case.location is not None:
                attrs["file"] = case.location.file
                attrs["line"] = str(case.location.line)
            element = ET.SubElement(node, "testcase", attrs)
            if case.status == "fail":
                failure = ET.SubElement(element, "failure", message=case.message)
                failure.text = f"expected: {case.expected}\nactual:   {case.actual}"
            elif case.status == "error":
                error = ET.SubElement(element, "error", message=case.message)
                error.text = f"{case.location}: {case.message}" if case.location else case.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


REPORTS: dict[str, Callable[[TestRun], str]] = {"text": text_report, "junit": junit_report}
