"""The HTTP ActionExecutor against real local HTTP servers.

The reference execution service (tests/support/exec_service.py) checks the
protocol end to end; a tiny scripted server checks how each kind of answer
(5xx, 4xx, garbage, silence) maps onto the port.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.adapters.http_executor import HttpExecutor
from orchestrator.execution import ActionIntent, ExecutionStatus, ExecutorUnavailable
from support.exec_service import ExecService


def intent(action: str = "PREP_RENEWAL_BRIEF", attempt: int = 1) -> ActionIntent:
    return ActionIntent(
        tenant_id="acme-corp",
        plan_id=f"plan-{uuid.uuid4().hex[:8]}",
        step_id=uuid.uuid4(),
        attempt=attempt,
        action_type=action,
        parameters={"audience": "cfo"},
        account_id="acct-1",
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ExecService]:
    with ExecService(tmp_path / "exec.db") as running:
        yield running


def test_submit_executes_once_per_key_and_lookup_finds_it(service: ExecService) -> None:
    executor = HttpExecutor(service.url)
    sent = intent()
    assert executor.lookup(sent.key).status == ExecutionStatus.UNKNOWN
    first = executor.submit(sent)
    again = executor.submit(sent)
    assert first.status == again.status == ExecutionStatus.SUCCEEDED
    assert executor.lookup(sent.key).status == ExecutionStatus.SUCCEEDED
    record = service.book.stats()["intents"][sent.key]
    assert (record["executions"], record["submissions"], record["lookups"]) == (1, 2, 1)
    assert (record["plan_id"], record["attempt"]) == (sent.plan_id, 1)


def test_failures_and_pending_map_to_the_port(service: ExecService) -> None:
    service.book.script = {
        "rules": [
            {"action_type": "FAILS", "outcome": "fail"},
            {"action_type": "SLOW", "outcome": "pending"},
        ],
        "pending_polls": 1,
    }
    executor = HttpExecutor(service.url)
    failed = executor.submit(intent("FAILS"))
    assert (failed.status, failed.error) == (ExecutionStatus.FAILED, "scripted failure")
    slow = intent("SLOW")
    assert executor.submit(slow).status == ExecutionStatus.PENDING  # 202
    assert executor.lookup(slow.key).status == ExecutionStatus.SUCCEEDED


def test_a_timeout_is_ambiguous_and_the_key_is_found_later(service: ExecService) -> None:
    service.book.script = {"rules": [{"outcome": "timeout"}], "timeout_seconds": 0.6}
    executor = HttpExecutor(service.url, timeout=0.2)
    sent = intent()
    with pytest.raises(ExecutorUnavailable, match="timed out"):
        executor.submit(sent)
    assert executor.lookup(sent.key).status == ExecutionStatus.SUCCEEDED
    assert service.book.stats()["intents"][sent.key]["executions"] == 1


def test_a_service_that_is_down_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executor = HttpExecutor(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(ExecutorUnavailable):
        executor.submit(intent())
    with pytest.raises(ExecutorUnavailable):
        executor.lookup("k")


Reply = tuple[int, bytes]


@pytest.fixture
def scripted() -> Iterator[Callable[[Reply], tuple[str, list[dict[str, Any]]]]]:
    """A server that answers every request with one scripted reply and records requests."""
    servers: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(reply: Reply) -> tuple[str, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, payload = reply
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}/api/", seen

    yield start
    for server, thread in zip(servers, threads, strict=True):
        server.shutdown()
        thread.join()
        server.server_close()


def test_the_request_carries_the_idempotency_key_and_the_intent(scripted: Any) -> None:
    url, seen = scripted((200, b'{"status": "succeeded", "detail": {"ref": "T-1"}}'))
    sent = intent()
    result = HttpExecutor(url).submit(sent)
    assert (result.status, result.detail) == (ExecutionStatus.SUCCEEDED, {"ref": "T-1"})
    [request] = seen
    assert request["method"] == "POST" and request["path"] == "/api/intents"
    assert request["headers"]["Idempotency-Key"] == sent.key
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert body["idempotency_key"] == sent.key and body["parameters"] == {"audience": "cfo"}
    HttpExecutor(url).lookup(sent.key)
    assert seen[1]["method"] == "GET"
    assert seen[1]["path"] == "/api/intents/" + sent.key.replace(":", "%3A")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ((503, b"busy"), "unavailable"),
        ((500, b""), "unavailable"),
        ((429, b"slow down"), "unavailable"),
        ((409, b"key reused"), "unavailable"),
        ((200, b"<html>"), "unavailable"),
        ((200, b'{"status": "EXPLODED"}'), "unavailable"),
        ((200, b"[1, 2]"), "unavailable"),
        ((400, b'{"error": "unknown action"}'), ExecutionStatus.FAILED),
        ((202, b""), ExecutionStatus.PENDING),
        ((201, b'{"status": "RUNNING"}'), ExecutionStatus.PENDING),
        ((200, b'{"status": "FAILED", "error": "mailbox full"}'), ExecutionStatus.FAILED),
    ],
)
def test_submit_answers_map_onto_the_port(scripted: Any, reply: Reply, expected: Any) -> None:
    url, _ = scripted(reply)
    executor = HttpExecutor(url)
    if expected == "unavailable":
        with pytest.raises(ExecutorUnavailable):
            executor.submit(intent())
        return
    result = executor.submit(intent())
    assert result.status == expected
    if reply[0] == 400:
        assert result.error is not None and "unknown action" in result.error


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ((404, b""), ExecutionStatus.UNKNOWN),
        ((200, b'{"status": "SUCCEEDED"}'), ExecutionStatus.SUCCEEDED),
        ((502, b""), "unavailable"),
        ((400, b""), "unavailable"),
    ],
)
def test_lookup_answers_map_onto_the_port(scripted: Any, reply: Reply, expected: Any) -> None:
    url, _ = scripted(reply)
    executor = HttpExecutor(url)
    if expected == "unavailable":
        with pytest.raises(ExecutorUnavailable):
            executor.lookup("p:s:1")
    else:
        assert executor.lookup("p:s:1").status == expected


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpExecutor("ftp://example.com")
    with pytest.raises(ValueError, match="timeout"):
        HttpExecutor("http://example.com", timeout=0)
