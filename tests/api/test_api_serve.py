"""``plan-orchestrator serve``: settings errors, an uninitialised store, and the poll loop."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.api.harness import DIRECTOR, REPO, SECRET, ApiClient, start_server, write_accounts

from orchestrator.main import main


def _serve(
    *args: str,
    secret: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """Run the verb in this process (error paths return before serving); (status, stderr)."""
    for name in [n for n in os.environ if n.startswith("PLAN_API_")]:
        monkeypatch.delenv(name)
    if secret is not None:
        monkeypatch.setenv("PLAN_API_JWT_SECRET", secret)
    policies = ["--policies", str(REPO / "policies"), "--policies", str(REPO / "plan_types")]
    status = main(["serve", *policies, *args])
    return status, capsys.readouterr().err


def test_serve_refuses_to_start_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _serve(
        "--store", "memory://", secret=None, monkeypatch=monkeypatch, capsys=capsys
    )
    assert status == 2
    assert "no JWT secret: set $PLAN_API_JWT_SECRET" in err


def test_serve_refuses_a_short_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _serve(
        "--store", "memory://", secret="short", monkeypatch=monkeypatch, capsys=capsys
    )
    assert status == 2
    assert "too short" in err


def test_serve_reports_an_uninitialised_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    status, err = _serve("--store", url, secret=SECRET, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 3, err
    assert "missing.db" in err


def test_serve_reports_a_bad_store_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _serve(
        "--store", "postgres://x", secret=SECRET, monkeypatch=monkeypatch, capsys=capsys
    )
    assert status == 2
    assert "unknown scheme" in err


def test_serve_reports_a_policy_bundle_that_does_not_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: planpolicy/v1\nkind: Nope\n")
    for name in [n for n in os.environ if n.startswith("PLAN_API_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PLAN_API_JWT_SECRET", SECRET)
    status = main(["serve", "--store", "memory://", "--policies", str(tmp_path)])
    assert status == 2
    assert "the policy bundle does not compile" in capsys.readouterr().err


def test_with_scheduler_the_poll_loop_activates_an_approved_plan(tmp_path: Path) -> None:
    write_accounts(tmp_path / "accounts", datetime.now(UTC))
    server = start_server(
        tmp_path,
        store_url=f"sqlite:///{tmp_path / 'plans.db'}",
        accounts=tmp_path / "accounts",
        extra_args=["--with-scheduler", "--interval", "0.2", "--executor", "memory"],
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


def test_the_poll_loop_needs_an_executor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PLANPOLICY_EXECUTOR_URL", raising=False)
    status, err = _serve(
        "--store", "memory://", "--with-scheduler",
        secret=SECRET, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert status == 2
    assert "no action executor" in err


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_the_poll_interval_must_be_positive(
    interval: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _serve(
        "--store", "memory://", "--with-scheduler", "--interval", interval,
        secret=SECRET, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert status == 2
    assert "--interval must be positive" in err
