"""Expressions checked ahead in a forked worker give exactly what checking here gives.

:func:`planpolicy.celahead.check_ahead` splits the new expressions between
this process and a forked worker, whose results this process takes as if
read from the check cache. Every result, and what ``planpolicy lint``
reports, must be the same with and without the worker.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.engine.conftest import REPO

from planpolicy import cel, celahead
from planpolicy.cel import CelEnvironment, clear_compile_cache, types_from_schema
from planpolicy.context import base_context_schema, normalize_for_types

ENV_TYPES = types_from_schema(normalize_for_types(base_context_schema()))

EXPRESSIONS = [
    ("account.health_score < 60", True),
    ("account.renewal_date - now <= duration('2880h')", True),
    ("account.renewal_date - duration('90d')", False),  # an invalid duration
    ("account.renewal.stats == 'OPEN'", True),  # an unknown field
    ("account.renewal.status == (now >", True),  # a syntax error
    ("account.renewal_date", True),  # not a boolean
    ("account.renewal_date", False),
    ("1 + 2 == 3", True),
    ("signals.open_p1_tickets > 0 || true", True),
    ("", True),
    ("size(account.name) > 3 && account.name.startsWith('A')", True),
    ("account.missing.deeper.still", False),
    ("[1, 2, 3].all(x, x > 0)", True),
    ("now > timestamp('2025-01-01T00:00:00Z')", True),
]


def _view(result: cel.CompileResult) -> Any:
    expr = result.expr
    shown = None
    if expr is not None:
        shown = (str(expr.result_type), expr.roots, expr.paths, expr.is_constant, expr.source)
    return result.problems, shown


def _fresh(monkeypatch: pytest.MonkeyPatch, cache: str) -> CelEnvironment:
    monkeypatch.setenv(cel.CACHE_DIR_ENV, cache)
    cel._STORES.clear()
    clear_compile_cache()
    return CelEnvironment(ENV_TYPES)


@pytest.mark.parametrize("cache", ["off", "dir"])
def test_results_are_those_checked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    where = "off" if cache == "off" else str(tmp_path / "a")
    env = _fresh(monkeypatch, where)
    expected = {item: _view(env.compile(item[0], expect_bool=item[1])) for item in EXPRESSIONS}
    env = _fresh(monkeypatch, "off" if cache == "off" else str(tmp_path / "b"))
    delivered = celahead.check_ahead(env, EXPRESSIONS * 2, minimum=2)
    # half was the worker's; results never cached (none here) would be checked here
    assert delivered == len(EXPRESSIONS) // 2
    for item, view in expected.items():
        assert _view(env.compile(item[0], expect_bool=item[1])) == view
    cel.save_compile_cache()
    if cache == "dir":  # the worker's results join the cache file like the others
        env = _fresh(monkeypatch, str(tmp_path / "b"))
        assert env.uncached(EXPRESSIONS) == []


def test_too_few_new_expressions_fork_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fresh(monkeypatch, "off")
    forked: list[int] = []
    monkeypatch.setattr(os, "fork", lambda: forked.append(1) or 0)
    assert celahead.check_ahead(env, EXPRESSIONS) == 0
    env.compile(EXPRESSIONS[0][0])
    assert celahead.check_ahead(env, EXPRESSIONS[:3], minimum=3) == 0  # one is cached now
    assert forked == []


def test_a_failing_worker_delivers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fresh(monkeypatch, "off")

    def broken(source: str, expect_bool: bool) -> Any:
        raise RuntimeError("worker bug")

    monkeypatch.setattr(env, "compile_encoded", broken)
    assert celahead.check_ahead(env, EXPRESSIONS, minimum=2) == 0
    assert env.compile("1 + 2 == 3").ok  # checked here instead


def test_malformed_deliveries_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fresh(monkeypatch, "off")
    data = json.dumps([["a > 1", True, [[], None]], ["x", "yes", []], 7, ["y", True, None]])
    assert celahead._adopt(env, data.encode()) == 0
    assert celahead._adopt(env, b"not json") == 0
    assert env.compile("a > 1").problems  # an unknown root: checked here, not taken


def _generated_tree(root: Path, count: int) -> list[str]:
    sys.path.insert(0, str(REPO / "tools" / "bench"))
    try:
        import bench_lint
    finally:
        sys.path.pop(0)
    policies, plan_types = bench_lint.generate(root, count)
    broken = plan_types / "plan_type_0003.yaml"
    text = broken.read_text()
    text = text.replace('status == "RENEWED"', "status == (now >").replace(
        "account.renewal_date >", "account.renewal_dat >"
    )
    broken.write_text(text)
    return [str(policies), str(plan_types)]


def test_lint_reports_the_same_with_and_without_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planpolicy.lint import run_lint

    paths = _generated_tree(tmp_path / "tree", celahead.MIN_EXPRESSIONS + 8)
    delivered: list[int] = []
    check_ahead = celahead.check_ahead

    def spy(*args: Any, **kwargs: Any) -> int:
        delivered.append(check_ahead(*args, **kwargs))
        return delivered[-1]

    monkeypatch.setattr(celahead, "check_ahead", spy)
    reports = []
    for check_jobs in (1, 2):
        _fresh(monkeypatch, str(tmp_path / f"cache{check_jobs}"))
        reports.append(run_lint(paths, check_jobs=check_jobs))
    assert len(delivered) == 1 and delivered[0] >= celahead.MIN_EXPRESSIONS // 2
    assert reports[0] == reports[1]
    shown = [(d.code, d.location.line) for d in reports[0].diagnostics]
    assert shown == [("PP403", 16), ("PP401", 26), ("PP403", 72)]
