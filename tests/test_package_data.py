"""Every data file the packages read at run time ships with them (pyproject's package-data)."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_tracked_data_file_under_src_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(
        ["git", "ls-files", "src"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    data_files = [name for name in tracked if not name.endswith(".py")]
    assert any(name.endswith("cel_syntax.json") for name in data_files)
    for name in data_files:
        package, _, inside = name.removeprefix("src/").partition("/")
        patterns = package_data.get(package, [])
        assert any(fnmatch.fnmatch(inside, pattern) for pattern in patterns), name
