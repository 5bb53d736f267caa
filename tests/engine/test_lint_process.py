"""What `planpolicy lint` changes in its own process, and what it leaves alone."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.engine.conftest import REPO

_SCRIPT = """
import gc, os, sys
from planpolicy.cli import main
before = gc.get_threshold()
code = main(["lint", "--format", "json", "policies", "plan_types"])
print("EXIT", code, file=sys.stderr)
print("PLUGINS", os.environ.get("PYDANTIC_DISABLE_PLUGINS"), file=sys.stderr)
print("RESTORED", gc.get_threshold() == before and gc.get_freeze_count() == 0, file=sys.stderr)
"""


def _lint_process(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line.split(" ", 1) for line in done.stderr.splitlines() if " " in line]
    return {key: value for key, value in lines if key in ("EXIT", "PLUGINS", "RESTORED")}


def test_lint_skips_pydantic_plugins_and_restores_garbage_collection() -> None:
    seen = _lint_process()
    assert seen == {"EXIT": "0", "PLUGINS": "__all__", "RESTORED": "True"}


def test_an_explicit_plugin_setting_is_left_alone() -> None:
    assert _lint_process(PYDANTIC_DISABLE_PLUGINS="some_plugin")["PLUGINS"] == "some_plugin"
