"""A reference execution service: the HTTP intents API the orchestrator talks to.

It is the "deduplicating test executor" of the race and crash tests, and a
stand-in for the real service in local runs:

- ``POST /intents`` (header ``Idempotency-Key``, JSON body) executes an intent
  **at most once per key** and answers every repeat with what it recorded;
- ``GET /intents/{key}`` answers the outcome, 404 for a key it never saw;
- ``GET /stats`` answers ``{"intents": {key: {...executions, submissions, lookups...}}}``;
- ``POST /script`` replaces the behaviour script; ``POST /reset`` forgets everything.

State lives in a SQLite file, so the counts survive the service and several
processes can read them. ``executions`` counts effective executions: it is set
to 1 when a key is first executed and never incremented by a repeat.

The script (JSON) decides what executing a key does::

    {"rules": [{"action_type": "REQUEST_RENEWAL_MEETING", "attempt": 1, "outcome": "fail"}],
     "fail_rate": 0.2, "timeout_rate": 0.05, "pending_rate": 0.1, "pending_polls": 2,
     "timeout_seconds": 1.0, "unavailable_rate": 0.0}

``outcome`` is ``succeed``, ``fail``, ``timeout`` (executed, but the answer
comes only after ``timeout_seconds``), ``pending`` (PENDING for the next
``pending_polls`` answers, then success) or ``unavailable`` (503, not
executed). Without a matching rule, the rates pick an outcome from a hash of
the key, so a run is reproducible. ``unavailable_rate`` applies to each call.

Run as a script: ``python exec_service.py --db PATH [--host H] [--port P] [--script JSON]``;
the bound port is printed as ``PORT=<n>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    key TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    action_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    polls_left INTEGER NOT NULL DEFAULT 0,
    executions INTEGER NOT NULL,
    submissions INTEGER NOT NULL DEFAULT 0,
    lookups INTEGER NOT NULL DEFAULT 0,
    executed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    refused INTEGER NOT NULL DEFAULT 0
);
"""


def _fraction(key: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class IntentBook:
    """The service's state: intents by key in SQLite, the script in memory."""

    def __init__(self, db: str | Path, script: dict[str, Any] | None = None) -> None:
        self._conn = sqlite3.connect(
            str(db), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable enough for a test double
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.script: dict[str, Any] = dict(script or {})

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Forget every intent."""
        with self._lock:
            self._conn.execute("DELETE FROM intents")
            self._conn.execute("DELETE FROM calls")

    def _decide(self, intent: dict[str, Any], key: str) -> str:
        for rule in self.script.get("rules", ()):
            if rule.get("action_type", "*") not in ("*", intent.get("action_type")):
                continue
            if rule.get("attempt") not in (None, intent.get("attempt")):
                continue
            return str(rule.get("outcome", "succeed"))
        roll = _fraction(key, "outcome")
        for outcome in ("fail", "timeout", "pending"):
            rate = float(self.script.get(f"{outcome}_rate", 0.0))
            if roll < rate:
                return outcome
            roll -= rate
        return "succeed"

    def unavailable(self, key: str) -> bool:
        """Whether this call is refused with a 503 (counted per key, reproducibly)."""
        rate = float(self.script.get("unavailable_rate", 0.0))
        if rate <= 0:
            return False
        with self._lock:
            self._conn.execute(
                "INSERT INTO calls (key) VALUES (?) ON CONFLICT (key) DO UPDATE SET refused = refused + 1",
                (key,),
            )
            (calls,) = self._conn.execute(
                "SELECT refused FROM calls WHERE key = ?", (key,)
            ).fetchone()
        return _fraction(f"{key}#{calls}", "unavailable") < rate

    def submit(self, key: str, intent: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """Execute ``intent`` once per key; the answer and how long to delay it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._row(key)
                delay = 0.0
                if row is None:
                    outcome = self._decide(intent, key)
                    if outcome == "unavailable":
                        self._conn.execute("ROLLBACK")
                        return {"status": "UNAVAILABLE"}, 0.0
                    status = {"fail": "FAILED", "pending": "PENDING"}.get(outcome, "SUCCEEDED")
                    self._conn.execute(
                        """INSERT INTO intents (key, plan_id, step_id, attempt, action_type,
                               outcome, status, error, polls_left, executions, submissions,
                               executed_at)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?)""",
                        (
                            key,
                            str(intent.get("plan_id", "")),
                            str(intent.get("step_id", "")),
                            int(intent.get("attempt", 0)),
                            str(intent.get("action_type", "")),
                            outcome,
                            status,
                            "scripted failure" if outcome == "fail" else None,
                            int(self.script.get("pending_polls", 2)) if outcome == "pending" else 0,
                            time.time(),
                        ),
                    )
                    if outcome == "timeout":
                        delay = float(self.script.get("timeout_seconds", 1.0))
                else:
                    self._conn.execute(
                        "UPDATE intents SET submissions = submissions + 1 WHERE key = ?", (key,)
                    )
                answer = self._answer(key)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return answer, delay

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The answer for ``key``; None if it was never submitted."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._row(key) is None:
                    self._conn.execute("COMMIT")
                    return None
                self._conn.execute("UPDATE intents SET lookups = lookups + 1 WHERE key = ?", (key,))
                answer = self._answer(key)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return answer

    def stats(self) -> dict[str, Any]:
        """Every intent with its counters."""
        with self._lock:
            rows = self._conn.execute(
                """SELECT key, plan_id, step_id, attempt, action_type, outcome, status,
                          executions, submissions, lookups FROM intents ORDER BY key"""
            ).fetchall()
        names = (
            "plan_id",
            "step_id",
            "attempt",
            "action_type",
            "outcome",
            "status",
            "executions",
            "submissions",
            "lookups",
        )
        return {"intents": {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}}

    def _row(self, key: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(
            "SELECT status FROM intents WHERE key = ?", (key,)
        ).fetchone()
        return row

    def _answer(self, key: str) -> dict[str, Any]:
        """The outcome as the API reports it; a pending intent finishes after its polls."""
        status, error, polls_left = self._conn.execute(
            "SELECT status, error, polls_left FROM intents WHERE key = ?", (key,)
        ).fetchone()
        if status == "PENDING":
            if polls_left <= 0:
                status = "SUCCEEDED"
                self._conn.execute("UPDATE intents SET status = ? WHERE key = ?", (status, key))
            else:
                self._conn.execute(
                    "UPDATE intents SET polls_left = polls_left - 1 WHERE key = ?", (key,)
                )
        answer: dict[str, Any] = {"key": key, "status": status, "detail": {"key": key}}
        if error:
            answer["error"] = error
        return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    book: IntentBook

    def log_message(self, format: str, *args: Any) -> None:
        """Do not log requests."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the caller gave up (a timeout)
            self.close_connection = True

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/stats":
            self._reply(200, self.book.stats())
        elif path.startswith("/intents/"):
            key = unquote(path[len("/intents/") :])
            if self.book.unavailable(key):
                self._reply(503, {"error": "unavailable"})
                return
            answer = self.book.lookup(key)
            if answer is None:
                self._reply(404, {"error": f"no intent `{key}`"})
            else:
                self._reply(200, answer)
        else:
            self._reply(404, {"error": "no such resource"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError:
            self._reply(400, {"error": "the body is not JSON"})
            return
        if path == "/reset":
            self.book.reset()
            self._reply(200, {"ok": True})
        elif path == "/script":
            self.book.script = dict(body)
            self._reply(200, {"ok": True})
        elif path == "/intents":
            key = self.headers.get("Idempotency-Key", "")
            if not key or not isinstance(body, dict):
                self._reply(
                    400, {"error": "an Idempotency-Key header and a JSON object are required"}
                )
                return
            if body.get("idempotency_key", key) != key:
                self._reply(400, {"error": "the body's idempotency_key differs from the header"})
                return
            if self.book.unavailable(key):
                self._reply(503, {"error": "unavailable"})
                return
            answer, delay = self.book.submit(key, body)
            if answer["status"] == "UNAVAILABLE":
                self._reply(503, {"error": "unavailable"})
                return
            if delay:
                time.sleep(delay)  # executed, but the caller gives up before the answer
            self._reply(202 if answer["status"] == "PENDING" else 200, answer)
        else:
            self._reply(404, {"error": "no such resource"})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Callers that time out and hang up are expected here: no traceback."""


class ExecService:
    """The service on a loopback port, served by a background thread (``with`` closes it)."""

    def __init__(
        self,
        db: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        script: dict[str, Any] | None = None,
    ) -> None:
        self.book = IntentBook(db, script)
        handler = type("Handler", (_Handler,), {"book": self.book})
        self.server = _QuietServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL of the intents API."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ExecService:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket and the database."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()
        self.book.close()

    def __enter__(self) -> ExecService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Reference execution service (intents API).")
    parser.add_argument("--db", required=True, help="SQLite file for intents and counters")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", default="{}", help="behaviour script as JSON")
    args = parser.parse_args(argv)
    service = ExecService(args.db, host=args.host, port=args.port, script=json.loads(args.script))
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    print(f"PORT={service.server.server_address[1]}", flush=True)
    stopped.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
