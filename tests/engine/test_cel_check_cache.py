"""CEL check results are cached per user across processes, safely and exactly."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.engine.conftest import REPO, PolicyTree

from planpolicy import cel, celcache
from planpolicy.cel import CelEnvironment, clear_compile_cache, make_activation, types_from_schema
from planpolicy.context import base_context_schema, normalize_for_types

RD = "plan_types/renewal_defense.yaml"

# A multi-line literal block whose second line has a type error, a warning in a
# folded block, a syntax error and an unknown field: every kind of position.
BROKEN = {
    """      expr: |
        account.renewal_date > now &&
        account.renewal_date - now <= duration("2880h")
""": """      expr: |
        account.renewal_date > now &&
          account.renewal_date - now <= 2880
""",
    'expr: account.renewal.status in ["OPEN", "AT_RISK"]': (
        'expr: account.renewal.stats in ["OPEN", "AT_RISK"]'
    ),
    'expr: account.renewal.status == "RENEWED"': "expr: account.renewal.status == (now >",
    'notBefore: account.renewal_date - duration("2160h")': (
        'notBefore: >\n          account.renewal_date -\n          duration("90d")'
    ),
}


def _broken_tree(root: Path) -> PolicyTree:
    tree = PolicyTree(root)
    for old, new in BROKEN.items():
        tree.replace(RD, old, new)
    return tree


def _lint(tree: PolicyTree, cache: str, *extra: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, planpolicy.cli as cli\n"
        "code = cli.main(sys.argv[1:])\n"
        "loaded = sorted(m for m in ('celpy', 'lark') if m in sys.modules)\n"
        "sys.stderr.write('LOADED=' + ','.join(loaded))\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "lint", "--format", "json", *extra, *tree.paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tree.root,
        env={**os.environ, cel.CACHE_DIR_ENV: cache},
    )


def _loaded(run: subprocess.CompletedProcess[str]) -> str:
    return run.stderr.rsplit("LOADED=", 1)[-1]


def _cache_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".cache"))


def test_a_hit_reports_exactly_what_a_miss_reports(tmp_path: Path) -> None:
    tree = _broken_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    uncached = _lint(tree, "off")
    first = _lint(tree, str(cache))
    second = _lint(tree, str(cache))
    assert uncached.returncode == first.returncode == second.returncode == 1
    assert first.stdout == uncached.stdout
    assert second.stdout == uncached.stdout
    found = {(d["code"], d["line"], d["column"]) for d in json.loads(second.stdout)["diagnostics"]}
    block = tree.line_of(RD, "account.renewal_date - now <= 2880")
    assert ("PP406", block, 38) in found  # `<=` on the second line of the block
    assert ("PP403", tree.line_of(RD, "renewal.stats"), tree.col_of(RD, "stats")) in found
    assert ("PP407", tree.line_of(RD, 'duration("90d")'), tree.col_of(RD, '"90d"')) in found
    assert ("PP401", tree.line_of(RD, "== (now >"), tree.col_of(RD, "== (now >") + 9) in found
    assert _loaded(second) == ""  # every expression came from the cache
    assert _loaded(first) == "celpy,lark"


def test_the_cache_is_one_private_file_read_without_rewriting(tmp_path: Path) -> None:
    tree = PolicyTree(tmp_path / "tree")
    cache = tmp_path / "cache"
    assert _lint(tree, str(cache)).returncode == 0
    (file,) = list(cache.iterdir())
    assert file.stat().st_mode & 0o077 == 0
    stamp = file.stat().st_mtime_ns
    again = _lint(tree, str(cache))
    assert again.returncode == 0 and _loaded(again) == ""
    assert file.stat().st_mtime_ns == stamp


def test_a_changed_expression_is_checked_and_added(tmp_path: Path) -> None:
    tree = PolicyTree(tmp_path / "tree")
    cache = tmp_path / "cache"
    assert _lint(tree, str(cache)).returncode == 0
    tree.replace(RD, "account.health_score < 60", 'account.health_score < "60"')
    miss = _lint(tree, str(cache))
    assert miss.returncode == 1 and _loaded(miss) == "celpy,lark"
    hit = _lint(tree, str(cache))
    assert hit.stdout == miss.stdout and _loaded(hit) == ""
    assert "PP406" in hit.stdout


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a cache file at all\n" * 100,
        b"planpolicy-cel-cache 1\n{broken json\n",
        b"planpolicy-cel-cache 1\n" + b"\xff\xfe" * 50,
        b'planpolicy-cel-cache 1\n{"checks": "someone else", "tables": null,'
        b' "tables_size": 0, "checks_size": 2}\n{}',
    ],
    ids=["empty", "foreign", "bad-header", "binary", "other-checker"],
)
def test_a_corrupt_or_foreign_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    tree = _broken_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    expected = _lint(tree, "off")
    os.environ[cel.CACHE_DIR_ENV] = str(cache)
    try:
        path = Path(cel._parser_cache_path() or "")
    finally:
        del os.environ[cel.CACHE_DIR_ENV]
    path.write_bytes(content)
    path.chmod(0o600)
    run = _lint(tree, str(cache))
    assert run.stdout == expected.stdout
    assert _lint(tree, str(cache)).stdout == expected.stdout  # and it was replaced


def _valid_file_with(entries: dict[str, object], path: Path) -> None:
    body = json.dumps(entries).encode()
    header = {
        "checks": celcache.fingerprint(),
        "tables": None,
        "tables_size": 0,
        "checks_size": len(body),
    }
    path.write_bytes(b"planpolicy-cel-cache 1\n" + json.dumps(header).encode() + b"\n" + body)
    path.chmod(0o600)


ENV_TYPES = types_from_schema(normalize_for_types(base_context_schema()))


@pytest.mark.parametrize(
    "value",
    [
        "text",
        [[], ["bool", [], [], "yes"]],
        [[["PP999", "made up", 1, 1, None]], None],
        [[], None],  # neither an expression nor an error
        [[], [["not", "a", "type"], [], [], True]],
        [[["PP406", "m", "1", 1, None]], None],
    ],
)
def test_malformed_entries_are_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setenv(cel.CACHE_DIR_ENV, str(tmp_path))
    source = "account.health_score < 61"
    digest = cel._context_digest(ENV_TYPES)
    path = Path(cel._parser_cache_path() or "")
    _valid_file_with({celcache.entry_key(digest, True, source): value}, path)
    clear_compile_cache()
    result = CelEnvironment(ENV_TYPES).compile(source)
    assert result.ok and result.problems == ()
    assert result.expr is not None and result.expr.roots == frozenset({"account"})


def test_a_hit_evaluates_after_parsing_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cel.CACHE_DIR_ENV, str(tmp_path))
    source = "account.health_score < 62 && now > timestamp('2025-01-01T00:00:00Z')"
    clear_compile_cache()
    missed = CelEnvironment(ENV_TYPES).compile(source)
    cel.save_compile_cache()
    cel._STORES.clear()  # as in a new process
    clear_compile_cache()
    hit = CelEnvironment(ENV_TYPES).compile(source)
    assert hit is not missed and hit == missed
    assert hit.expr is not None and hit.expr._runner._tree is None  # not parsed yet
    context = {"account": {"health_score": 40}, "now": dt.datetime(2025, 6, 1, tzinfo=dt.UTC)}
    assert hit.expr.evaluate(make_activation(context)).value is True
    assert hit.expr.tree.data == missed.expr.tree.data  # type: ignore[union-attr]
    error = hit.expr.evaluate(make_activation({"now": context["now"]}))
    assert error.error == missed.expr.evaluate(make_activation({"now": context["now"]})).error  # type: ignore[union-attr]


def test_off_writes_nothing(tmp_path: Path) -> None:
    tree = PolicyTree(tmp_path / "tree")
    home = tmp_path / "xdg"
    run = subprocess.run(
        [sys.executable, "-m", "planpolicy.cli", "lint", *tree.paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, cel.CACHE_DIR_ENV: "off", "XDG_CACHE_HOME": str(home)},
    )
    assert run.returncode == 0, run.stderr
    assert not home.exists()


def test_bundled_policies_lint_the_same_from_the_cache(tmp_path: Path) -> None:
    tree = PolicyTree(tmp_path / "tree")
    cache = tmp_path / "cache"
    first = _lint(tree, str(cache), "--strict")
    second = _lint(tree, str(cache), "--strict")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert len(_cache_files(cache)) == 1
    assert (REPO / "policies").is_dir()
