"""The CEL grammar's parse tables are cached per user, safely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.engine.conftest import REPO

from planpolicy import cel


def _lint(cache_dir: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "planpolicy.cli",
            "lint",
            "--format",
            "json",
            str(REPO / "policies"),
            str(REPO / "plan_types"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, cel.CACHE_DIR_ENV: cache_dir},
    )


def test_second_process_reuses_the_cached_tables(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _lint(str(cache))
    assert first.returncode == 0, first.stderr
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].stat().st_size > 10_000
    stamp = files[0].stat().st_mtime_ns
    second = _lint(str(cache))
    assert second.returncode == 0, second.stderr
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
