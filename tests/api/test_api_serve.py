"""``plan-orchestrator serve``: settings errors, an uninitialised store, and the poll loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.api.harness import DIRECTOR, REPO, SECRET, ApiClient, start_server, write_accounts


def _serve(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    policies = ["--policies", str(REPO / "policies"), "--policies", str(REPO / "plan_types")]
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.main", "serve", *policies, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAN_API_")}
    result = _serve("--store", "memory://", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "no JWT secret: set $PLAN_API_JWT_SECRET" in result.stderr


def test_serve_refuses_a_short_secret(tmp_path: Path) -> None:
    env = {**os.environ, "PLAN_API_JWT_SECRET": "short"}
    result = _serve("--store", "memory://", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "too short" in result.stderr


def test_serve_reports_an_uninitialised_store(tmp_path: Path) -> None:
    env = {**os.environ, "PLAN_API_JWT_SECRET": SECRET}
    result = _serve("--store", f"sqlite:///{tmp_path / 'missing.db'}", env=env, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "missing.db" in result.stderr


def test_serve_reports_a_bad_store_url(tmp_path: Path) -> None:
    env = {**os.environ, "PLAN_API_JWT_SECRET": SECRET}
    result = _serve("--store", "postgres://x", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown scheme" in result.stderr


def test_with_scheduler_the_poll_loop_activates_an_approved_plan(tmp_path: Path) -> None:
    write_accounts(tmp_path / "accounts", datetime.now(UTC))
    server = start_server(
        tmp_path,
        store_url=f"sqlite:///{tmp_path / 'plans.db'}",
        accounts=tmp_path / "accounts",
        extra_args=["--with-scheduler", "--interval", "0.2"],
    )
    api = ApiClient(server.base_url, "t-poll")
    try:
        plan = api.approved("acme")
        deadline = time.monotonic() + 20
        status = plan["status"]
        while time.monotonic() < deadline and status != "ACTIVE":
            time.sleep(0.1)
            status = api.get(f"/v1/plans/{plan['plan_id']}").json()["status"]
        assert status == "ACTIVE"
        entries = api.get(f"/v1/plans/{plan['plan_id']}/ledger").json()["entries"]
        activated = next(e for e in entries if e["event"] == "activated")
        assert activated["actor"] == "orchestrator"
        # the loop goes on dispatching: the first step reaches the (in-process) executor
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            steps = api.get(f"/v1/plans/{plan['plan_id']}", "dir", DIRECTOR).json()["steps"]
            if steps[0]["attempts"] >= 1:
                break
            time.sleep(0.1)
        assert steps[0]["attempts"] >= 1
    finally:
        api.close()
        server.stop()
    # uvicorn shuts down gracefully, then re-raises SIGTERM: the poll loop stopped first.
    assert server.proc.returncode in (0, -signal.SIGTERM), server.log()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_the_poll_interval_must_be_positive(tmp_path: Path, interval: str) -> None:
    env = {**os.environ, "PLAN_API_JWT_SECRET": SECRET}
    result = _serve(
        "--store", "memory://", "--with-scheduler", "--interval", interval, env=env, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "--interval must be positive" in result.stderr
