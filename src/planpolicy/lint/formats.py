"""Output formats for diagnostics: text, github, json and sarif.

``text`` is for people (source line and caret), ``github`` prints workflow
annotations, ``json`` is for tools, ``sarif`` is SARIF 2.1.0 for code-scanning
dashboards. Each formatter takes a :class:`~planpolicy.lint.LintReport`-like
sequence of diagnostics and returns the whole text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from planpolicy.diagnostics import Diagnostic, Severity

__all__ = ["FORMATS", "format_github", "format_json", "format_sarif", "format_text"]

TOOL_URI = "https://planpolicy.dev/docs/lint"


@cache
def _source_lines(file: str) -> tuple[str, ...]:
    try:
        with open(file, encoding="utf-8", errors="replace") as fh:
            return tuple(fh.read(2_000_000).splitlines())
    except OSError:
        return ()


def _summary(diagnostics: Sequence[Diagnostic], files: int, dropped: int) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    plural = "s" if files != 1 else ""
    text = f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''} in {files} file{plural}"
    if dropped:
        text += f" ({dropped} more not shown: limit reached)"
    return text


def format_text(diagnostics: Sequence[Diagnostic], *, files: int = 0, dropped: int = 0) -> str:
    """``file:line:col: severity: message [CODE]`` with the source line and a caret."""
    out: list[str] = []
    for d in diagnostics:
        out.append(str(d))
        loc = d.location
        if loc is not None:
            lines = _source_lines(loc.file)
            if 0 < loc.line <= len(lines):
                source = lines[loc.line - 1].expandtabs(1)
                out.append(f"  {loc.line:>4} | {source}")
                out.append(f"       | {' ' * max(loc.column - 1, 0)}^")
        if d.hint:
            out.append(f"  hint: {d.hint}")
    out.append(_summary(diagnostics, files, dropped))
    return "\n".join(out) + "\n"


def _gh_escape(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def format_github(diagnostics: Sequence[Diagnostic], *, files: int = 0, dropped: int = 0) -> str:
    """GitHub Actions workflow commands: ``::error file=...,line=...,col=...::message``."""
    out = []
    for d in diagnostics:
        level = {"error": "error", "warning": "warning"}.get(d.severity.value, "notice")
        props = [f"title={_gh_escape(d.code + (' ' + d.rule if d.rule else ''), prop=True)}"]
        if d.location:
            props = [
                f"file={_gh_escape(d.location.file, prop=True)}",
                f"line={d.location.line}",
                f"col={d.location.column}",
                *props,
            ]
        message = d.message + (f" (hint: {d.hint})" if d.hint else "")
        out.append(f"::{level} {','.join(props)}::{_gh_escape(message)}")
    return "\n".join(out) + ("\n" if out else "")


def format_json(diagnostics: Sequence[Diagnostic], *, files: int = 0, dropped: int = 0) -> str:
    """A JSON object with ``diagnostics`` and a ``summary``."""
    doc = {
        "version": 1,
        "diagnostics": [d.as_dict() for d in diagnostics],
        "summary": {
            "errors": sum(1 for d in diagnostics if d.severity is Severity.ERROR),
            "warnings": sum(1 for d in diagnostics if d.severity is Severity.WARNING),
            "files": files,
            "dropped": dropped,
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def _artifact_uri(file: str) -> str:
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return path.as_posix()


def _rules_catalog() -> dict[str, dict[str, Any]]:
    from planpolicy.lint.registry import RULES

    return {
        rule.RULE.code: {
            "id": rule.RULE.code,
            "name": rule.RULE.name,
            "shortDescription": {"text": rule.RULE.summary},
            "defaultConfiguration": {"level": rule.RULE.severity.value},
        }
        for rule in RULES
    }


def format_sarif(diagnostics: Sequence[Diagnostic], *, files: int = 0, dropped: int = 0) -> str:
    """A SARIF 2.1.0 log with one run."""
    from planpolicy import __version__

    catalog = _rules_catalog()
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for d in diagnostics:
        rule = catalog.get(d.code) or {
            "id": d.code,
            "shortDescription": {"text": d.rule or d.code},
        }
        rules.setdefault(d.code, rule)
        result: dict[str, Any] = {
            "ruleId": d.code,
            "level": {"error": "error", "warning": "warning"}.get(d.severity.value, "note"),
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        }
        if d.location:
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _artifact_uri(d.location.file)},
                        "region": {
                            "startLine": max(d.location.line, 1),
                            "startColumn": max(d.location.column, 1),
                        },
                    }
                }
            ]
        results.append(result)
    ordered = sorted(rules)
    for result in results:
        result["ruleIndex"] = ordered.index(result["ruleId"])
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "planpolicy",
                        "version": __version__,
                        "informationUri": TOOL_URI,
                        "rules": [rules[r] for r in ordered],
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


Formatter = Callable[..., str]

FORMATS: dict[str, Formatter] = {
    "text": format_text,
    "github": format_github,
    "json": format_json,
    "sarif": format_sarif,
}


def auto_format() -> str:
    """``github`` inside GitHub Actions, ``text`` elsewhere."""
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"
