"""The CEL grammar's parse tables are cached per user, safely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.engine.conftest import REPO

from planpolicy import cel


def _lint(cache_dir: str, plan_types: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "planpolicy.cli",
            "lint",
            "--format",
            "json",
            str(REPO / "policies"),
            str(plan_types),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, cel.CACHE_DIR_ENV: cache_dir},
    )


def test_second_process_reuses_the_cached_tables(tmp_path: Path) -> None:
    # A problem in an expression is located with cel-python's parser (lark's
    # tables); valid expressions alone are checked without them.
    plan_types = tmp_path / "plan_types"
    plan_types.mkdir()
    text = (REPO / "plan_types" / "renewal_defense.yaml").read_text(encoding="utf-8")
    broken = text.replace("account.renewal.", "account.renewl.", 1)
    assert broken != text
    (plan_types / "renewal_defense.yaml").write_text(broken, encoding="utf-8")
    cache = tmp_path / "cache"
    first = _lint(str(cache), plan_types)
    assert first.returncode == 1, first.stderr
    assert "renewl" in first.stdout
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].stat().st_size > 10_000
    stamp = files[0].stat().st_mtime_ns
    second = _lint(str(cache), plan_types)
    assert second.returncode == 1, second.stderr
    assert second.stdout == first.stdout
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cel.CACHE_DIR_ENV, "off")
    assert cel._parser_cache_path() is None


def test_directory_writable_by_others_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(cel.CACHE_DIR_ENV, str(shared))
    assert cel._parser_cache_path() is None
    shared.chmod(0o700)
    assert cel._parser_cache_path() is not None


EXPRESSIONS = [
    "account.renewal.status in ['OPEN', 'AT_RISK'] && !signals.champion_left",
    "plan.steps.exists(k, plan.steps[k].status == 'SUCCEEDED') || now > plan.expires_at",
    'account.renewal_date - duration("1440h") < now ? 1u : 0x10u',
    "size(account.name) > 3 && true == !false",
]


def _no_grammar_build(monkeypatch: pytest.MonkeyPatch) -> None:
    import lark

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parse tables were built from the grammar")

    monkeypatch.setattr(lark.Lark, "__init__", refuse)


def test_shipped_tables_are_used_when_no_cache_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "cel_parser.tables"
    assert cel.write_packaged_tables(shipped) is True
    assert cel.write_packaged_tables(shipped) is False  # current: not rebuilt
    monkeypatch.setenv(cel.CACHE_DIR_ENV, "off")
    monkeypatch.setattr(cel, "PACKAGED_TABLES", tmp_path / "none.tables")
    assert cel._store() is None
    built = cel._build_parser(False)  # from the grammar (nothing shipped yet)
    monkeypatch.setattr(cel, "PACKAGED_TABLES", shipped)
    _no_grammar_build(monkeypatch)
    loaded = cel._build_parser(False)
    for source in EXPRESSIONS:
        assert loaded.parse(source) == built.parse(source)


def test_shipped_tables_for_another_key_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "cel_parser.tables"
    assert cel.write_packaged_tables(shipped)
    stale = b"another-lark\n" + shipped.read_bytes().partition(b"\n")[2]
    shipped.write_bytes(stale)
    monkeypatch.setenv(cel.CACHE_DIR_ENV, "off")
    monkeypatch.setattr(cel, "PACKAGED_TABLES", shipped)
    assert cel._packaged_tables(cel._tables_key()) is None
    assert cel.write_packaged_tables(shipped) is True  # a stale file is rebuilt
    assert cel._packaged_tables(cel._tables_key()) is not None


def test_broken_shipped_tables_fall_back_to_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cel._load_lark()
    shipped = tmp_path / "cel_parser.tables"
    shipped.write_bytes(cel._tables_key().encode() + b"\nnot a pickle")
    monkeypatch.setenv(cel.CACHE_DIR_ENV, "off")
    monkeypatch.setattr(cel, "PACKAGED_TABLES", shipped)
    parser = cel._build_parser(False)
    assert parser.parse(EXPRESSIONS[0]) is not None
