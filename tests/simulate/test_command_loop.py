"""The simulation equals a loop of the real `plan-orchestrator tick --now` command.

The command runs as in production: wired from its options, over a SQLite file,
reading account facts from files and calling the execution service over HTTP
(here a small service in the test, answering as the scenario scripts). The
loop calls it at every 5-minute tick at which some plan is due (a tick with
nothing due reads the due index and writes nothing), after rewriting the
account files as the timeline has them. People's commands go through
``PlanService`` on the same file at their own times (the ``plan`` verbs take
the wall clock). The ledgers, plan records and attempts must equal the
simulation's, byte for byte.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import pytest
import yaml

from orchestrator.clock import ManualClock
from orchestrator.execution import ActionIntent, ExecutionStatus, ExecutorUnavailable
from orchestrator.main import main as orchestrator
from orchestrator.policy import PolicyRuntime
from orchestrator.service import PlanService
from orchestrator.stores import open_store
from planpolicy import PolicyBundle
from planpolicy.scenario import load_scenario
from planpolicy.simulate import WORKER, apply_event, events, run
from planpolicy.simworld import ScriptedExecutor, TimelineAccounts

from .conftest import POLICY_PATHS
from .test_equivalence import assert_same, simulated

SCENARIO = Path(__file__).parent / "scenarios" / "two_days.yaml"


class _Service(BaseHTTPRequestHandler):
    """The execution service's intents API over a scripted executor."""

    executor: ScriptedExecutor

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, code: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _result(self, status: ExecutionStatus, detail: dict[str, Any], error: str | None) -> None:
        self._answer(200, {"status": status.value, "detail": detail, "error": error})

    def do_POST(self) -> None:
        raw = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        intent = ActionIntent(
            tenant_id=raw["tenant_id"],
            plan_id=raw["plan_id"],
            step_id=UUID(raw["step_id"]),
            attempt=raw["attempt"],
            action_type=raw["action_type"],
            parameters=raw["parameters"],
            account_id=raw["account_id"],
        )
        assert self.headers["Idempotency-Key"] == intent.key
        try:
            result = self.executor.submit(intent)
        except ExecutorUnavailable:
            self._answer(503)
            return
        self._result(result.status, result.detail, result.error)

    def do_GET(self) -> None:
        key = unquote(self.path.rsplit("/", 1)[-1])
        result = self.executor.lookup(key)
        if result.status == ExecutionStatus.UNKNOWN:
            self._answer(404)
        else:
            self._result(result.status, result.detail, result.error)


@pytest.fixture
def service() -> Iterator[tuple[str, type[_Service]]]:
    """An HTTP execution service (its base URL and handler class); the test sets its executor."""
    handler = type("Handler", (_Service,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_simulation_equals_the_tick_command(
    bundle: PolicyBundle, tmp_path: Path, service: tuple[str, type[_Service]]
) -> None:
    base, handler = service
    scenario = load_scenario(SCENARIO, bundle)
    url = f"sqlite:///{tmp_path / 'plans.db'}?synchronous=normal"
    assert orchestrator(["init", "--store", url]) == 0
    service_clock = ManualClock(scenario.start)
    handler.executor = ScriptedExecutor(service_clock, scenario.script, seed="0/0")
    accounts = TimelineAccounts(scenario.tenant, scenario.accounts, scenario.changes)
    facts_dir = tmp_path / "accounts"
    (facts_dir / scenario.tenant).mkdir(parents=True)
    policies = [arg for path in POLICY_PATHS for arg in ("--policies", path)]

    store = open_store(url)
    clock = ManualClock(scenario.start)
    people = PlanService(store, PolicyRuntime(bundle), accounts, clock)
    pending = events(scenario)
    position = ticks = 0
    now = scenario.start
    try:
        while now <= scenario.end:
            while position < len(pending) and pending[position].at <= now:
                clock.set(pending[position].at)
                apply_event(people, scenario, pending[position])
                position += 1
            if store.due_plans(now, limit=1):
                for name in scenario.accounts:
                    account, signals = accounts.snapshot(scenario.tenant, name, now)
                    text = yaml.safe_dump({"account": dict(account), "signals": dict(signals)})
                    (facts_dir / scenario.tenant / f"{name}.yaml").write_text(text)
                service_clock.set(now)
                argv = ["tick", "--now", now.isoformat(), "--store", url, *policies]
                argv += ["--accounts", str(facts_dir), "--executor", base, "--worker", WORKER]
                assert orchestrator(argv) == 0
                ticks += 1
            clock.set(now)
            now += timedelta(minutes=5)
        reference = {
            p.plan.plan_id: (
                [e.model_dump(mode="json") for e in store.ledger(scenario.tenant, p.plan.plan_id)],
                store.get_plan(scenario.tenant, p.plan.plan_id).model_dump(mode="json"),
                [
                    a.model_dump(mode="json")
                    for a in store.list_attempts(scenario.tenant, p.plan.plan_id)
                ],
            )
            for p in scenario.plans
        }
    finally:
        store.close()
    result = run(scenario, bundle)
    assert_same(reference, simulated(result))
    assert ticks > 30  # the hourly rechecks ran as commands
    assert {p.status for p in result.plans} == {"COMPLETED", "ACTIVE"}
