"""Entry points: the ``run`` loop as a real process stopped by signals, and the Lambda poll.

The Lambda handler is invoked with a real EventBridge "Scheduled Event"
payload against the DynamoDB store on the tests' moto server, with the
reference execution service behind ``PLANPOLICY_EXECUTOR_URL``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import lambda_handlers
from orchestrator.main import main
from orchestrator.wiring import WiringError, build
from support.exec_service import ExecService
from support.world import AE, MANAGER, POLICY_PATHS, make_plan, runtime

pytestmark = pytest.mark.slow


def _accounts(directory: Path) -> str:
    directory.mkdir()
    facts = {"account": {"account_id": "acct-1", "renewal": {"status": "OPEN"}}}
    (directory / "acct-1.yaml").write_text(yaml.safe_dump(facts), encoding="utf-8")
    return str(directory)


def _approved_plan(store_url: str, accounts: str) -> tuple[str, str]:
    """A FOLLOW_UP plan approved now (wall clock), so that a poll at once activates it."""
    with build(store_url=store_url, runtime=runtime(), accounts=accounts) as wired:
        wired.store.init()
        now = wired.clock.now()
        plan = wired.service.create(make_plan("acct-1", plan_type="FOLLOW_UP", at=now), AE)
        wired.service.approve(plan.tenant_id, plan.plan_id, MANAGER)
    return plan.tenant_id, plan.plan_id


def _status(store_url: str, tenant: str, plan_id: str) -> str:
    with build(store_url=store_url, runtime=runtime()) as wired:
        return wired.store.get_plan(tenant, plan_id).status


def _read_line(stream: Any, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return str(stream.readline()) if ready else ""


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_run_loops_until_a_signal_and_stops_cleanly(
    stop_with: signal.Signals, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'plans.db'}"
    accounts = _accounts(tmp_path / "accounts")
    assert main(["init", "--store", store_url]) == 0
    tenant, plan_id = _approved_plan(store_url, accounts)
    policies = [arg for path in POLICY_PATHS for arg in ("--policies", path)]
    command = [
        sys.executable, "-c", "from orchestrator.main import main; raise SystemExit(main())",
        "run", "--store", store_url, "--interval", "0.2", "--executor", "memory",
        "--accounts", accounts, "--worker", "loop-1", *policies,
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        try:
            banner = _read_line(process.stdout, 60)
            assert "worker `loop-1` polling every 0.2s" in banner
            lines = [_read_line(process.stdout, 30) for _ in range(3)]
            assert lines[0].startswith("tick at ") and "1 activated" in lines[0], lines
            process.send_signal(stop_with)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err
    assert "stopped after" in out.splitlines()[-1]
    assert "Traceback" not in err
    assert _status(store_url, tenant, plan_id) == "COMPLETED"


EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-05T09:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/planpolicy-poll"],
    "detail": {},
}


class LambdaContext:
    """The parts of the Lambda context object the handler reads."""

    def __init__(self, remaining_ms: int = 240_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "planpolicy-poll"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@pytest.fixture
def lambda_env(
    dynamodb_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ExecService]]:
    store_url = f"dynamodb://poll{uuid.uuid4().hex[:8]}-?region=us-east-1"
    with ExecService(tmp_path / "exec.db") as service:
        monkeypatch.setenv("PLANSTORE_URL", store_url)
        monkeypatch.setenv("PLANPOLICY_POLICIES", os.pathsep.join(POLICY_PATHS))
        monkeypatch.setenv("PLANPOLICY_ACCOUNTS", _accounts(tmp_path / "accounts"))
        monkeypatch.setenv("PLANPOLICY_EXECUTOR_URL", service.url)
        monkeypatch.setenv("PLANPOLICY_METRIC_NAMESPACE", "PlanPolicy/test")
        try:
            yield store_url, service
        finally:
            lambda_handlers.reset()


def test_the_scheduled_poll_runs_one_tick_against_dynamodb(
    lambda_env: tuple[str, ExecService], capsys: pytest.CaptureFixture[str]
) -> None:
    store_url, service = lambda_env
    tenant, plan_id = _approved_plan(store_url, os.environ["PLANPOLICY_ACCOUNTS"])
    context = LambdaContext()
    event = json.loads(json.dumps(EVENT | {"time": datetime.now(UTC).isoformat()}))
    result = lambda_handlers.poll_handler(event, context)
    assert result["due"] == 1 and result["activated"] == 1 and result["all_steps_done"] == 1
    assert result["worker"] == f"lambda:{context.aws_request_id}"
    assert result["scheduled_time"] == event["time"] and result["problems"] == []
    assert result["past_due"] == 0
    assert _status(store_url, tenant, plan_id) == "COMPLETED"
    assert {r["executions"] for r in service.book.stats()["intents"].values()} == {1}
    # warm container: the next scheduled event finds nothing due
    again = lambda_handlers.poll_handler(EVENT, LambdaContext())
    assert again["due"] == 0
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    assert len(metrics) == 2
    assert metrics[0]["PlansDue"] == 1 and metrics[0]["PlansPastDue"] == 0
    definition = metrics[0]["_aws"]["CloudWatchMetrics"][0]
    assert definition["Namespace"] == "PlanPolicy/test"
    assert {m["Name"] for m in definition["Metrics"]} == {"PlansDue", "PlansPastDue", "TickErrors"}


def test_the_poll_stops_taking_plans_near_the_lambda_deadline(
    lambda_env: tuple[str, ExecService],
) -> None:
    store_url, _ = lambda_env
    _approved_plan(store_url, os.environ["PLANPOLICY_ACCOUNTS"])
    result = lambda_handlers.poll_handler(EVENT, LambdaContext(remaining_ms=5_000))
    assert result["stopped_early"] == 1 and result["due"] == 0


def test_the_poll_refuses_to_run_without_an_executor(
    lambda_env: tuple[str, ExecService], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANPOLICY_EXECUTOR_URL")
    with pytest.raises(WiringError, match="PLANPOLICY_EXECUTOR_URL"):
        lambda_handlers.poll_handler(EVENT, LambdaContext())
