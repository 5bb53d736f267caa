"""Synthesize the CDK app once per test session (about 20 s) and share the result.

Every test in this package reads the same cloud assembly: the template, the
cdk-nag validation report and the staged code asset. The deploy extra
(``pip install -e '.[deploy]'``, done by ``make test``) provides the CDK; without
it these tests are skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

TEST_CONTEXT: dict[str, object] = {
    "stack_name": "PlanPolicyTest",
    "table_prefix": "pptest-",
    "schedule_rate": "rate(2 minutes)",
    "jwt_issuer": "https://issuer.example.com/",
    "jwt_audience": "plans-api,plans-ui",
    # executor_url: the session's fake execution service (a loopback URL)
    "log_retention_days": 30,
    "synth_only": True,
}
"""The settings the session's synthesis uses (``synth_only``: no dependency layer)."""


@dataclass(frozen=True)
class Synthesized:
    """One synthesis: its template, validation report, and where it was written."""

    outdir: Path
    template: dict[str, Any]
    report: dict[str, Any]
    failure: str | None
    """The synthesis error message (cdk-nag's ``ValidationFailed``), if any."""

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """The template's resources of one CloudFormation type, by logical id."""
        return {
            name: resource
            for name, resource in self.template["Resources"].items()
            if resource["Type"] == kind
        }

    def resource(self, kind: str, construct_id: str) -> tuple[str, dict[str, Any]]:
        """The one resource of ``kind`` made by the stack's construct ``construct_id``.

        CDK derives logical ids from the construct id plus a hash suffix.
        """
        found = [
            (name, resource)
            for name, resource in self.resources(kind).items()
            if name.startswith(construct_id)
        ]
        assert len(found) == 1, f"{len(found)} {kind} resources named `{construct_id}...`"
        return found[0]


@dataclass
class FakeExecutor:
    """The execution service's intents API on loopback; every intent succeeds once."""

    url: str
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)


def _executor_handler(executor: FakeExecutor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            key = self.headers.get("Idempotency-Key", "")
            executor.intents.setdefault(key, json.loads(self.rfile.read(length) or b"{}"))
            self._answer(201, {"status": "SUCCEEDED", "detail": {}})

        def do_GET(self) -> None:
            key = unquote(self.path.rsplit("/", 1)[-1])
            if key in executor.intents:
                self._answer(200, {"status": "SUCCEEDED", "detail": {}})
            else:
                self._answer(404, {"error": "unknown key"})

    return Handler


@pytest.fixture(scope="session")
def fake_executor() -> Iterator[FakeExecutor]:
    """A fake execution service for the poll handler, started before the synthesis."""
    executor = FakeExecutor(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _executor_handler(executor))
    server.daemon_threads = True
    executor.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield executor
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def synthesized(
    tmp_path_factory: pytest.TempPathFactory, fake_executor: FakeExecutor
) -> Synthesized:
    """The app synthesized with :data:`TEST_CONTEXT` into a session temporary directory."""
    if importlib.util.find_spec("aws_cdk") is None:
        message = "the deploy extra is not installed (pip install -e '.[deploy]')"
        if os.environ.get("CI", "").lower() == "true":  # `make test` installs it: never skip in CI
            pytest.fail(message)
        pytest.skip(message)
    from infra.app import build_app  # sets jsii's Node.js settings before importing the CDK

    base = tmp_path_factory.mktemp("cdk")
    outdir = base / "cdk.out"
    app, stack = build_app(
        outdir=outdir,
        build_dir=base / "build",
        context={**TEST_CONTEXT, "executor_url": fake_executor.url},
        env={},
    )
    failure = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail the synthesis; the report says which
        failure = str(exc)
    template = json.loads((outdir / stack.template_file).read_text(encoding="utf-8"))
    report_file = outdir / "validation-report.json"
    report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.exists() else {}
    return Synthesized(outdir=outdir, template=template, report=report, failure=failure)
