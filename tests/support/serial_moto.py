"""A moto server that handles one request at a time.

moto's server runs every request on its own thread, and a failing DynamoDB
transaction restores a snapshot of the whole table taken before it started, so
concurrent writers can lose acknowledged writes (see FACTS.md). Wrapping moto's
WSGI app in a lock makes each request atomic with respect to the others, which is
what DynamoDB guarantees.

Two front ends serve the locked app:

- ``keepalive`` (default): a small HTTP/1.1 server on ``http.server`` that keeps
  connections open. Werkzeug's development server closes the connection after
  every response and spends about as much CPU per request as moto itself, so this
  one roughly halves the server's cost per call.
- ``werkzeug``: werkzeug's server with moto's request handler, as ``moto_server``
  runs it (for comparison when in doubt).

Run as a script: ``python serial_moto.py [--host H] [--port P] [--server S]``.
Port 0 picks a free port; the bound port is printed as ``PORT=<n>`` on stdout once
the server accepts connections.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def speed_up_moto() -> None:
    """Remove two per-request costs of moto that do not change what it answers.

    - ``BaseResponse.call_action`` lists the handler's methods with
      ``inspect.getmembers`` on every request; the list never changes, so cache it.
    - ``transact_write_items`` snapshots a table (``copy.deepcopy``) once per
      *item* that touches it, to restore it if the transaction fails; one
      snapshot per table per transaction restores exactly the same state.

    Requests are serialized by :class:`SerialApp`, so the patched code never runs
    concurrently with itself.
    """
    import copy
    import functools

    from moto.core import responses
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(  # type: ignore[attr-defined]
        responses.method_names_from_class  # type: ignore[attr-defined]
    )

    class SnapshotOnce:
        """Stands in for the ``copy`` module inside ``moto.dynamodb.models``."""

        def __init__(self) -> None:
            self.snapshots: dict[int, tuple[Table, Table]] | None = None

        def deepcopy(self, obj: Any, memo: Any = None) -> Any:
            if self.snapshots is None or not isinstance(obj, Table):
                return copy.deepcopy(obj, memo)
            if id(obj) not in self.snapshots:
                self.snapshots[id(obj)] = (obj, copy.deepcopy(obj))
            return self.snapshots[id(obj)][1]

    snapshot = SnapshotOnce()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshot.snapshots = {}
        try:
            original(self, transact_items)
        finally:
            snapshot.snapshots = None

    models.copy = snapshot  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class SerialApp:
    """Serve the wrapped WSGI app one request at a time, body included.

    DynamoDB calls (``X-Amz-Target: DynamoDB_...``) go straight to moto's DynamoDB
    app, skipping the dispatcher's per-request service detection (which costs as
    much as the call itself); everything else (``/moto-api/``) goes through the
    dispatcher. Both share moto's global backend state.
    """

    def __init__(self, app: WSGIApp, dynamodb: WSGIApp | None = None) -> None:
        self._app = app
        self._dynamodb = dynamodb or app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        app = self._dynamodb if target.startswith("DynamoDB_") else self._app
        with self._lock:
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections, bridging each request to a WSGI app."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    app: WSGIApp

    def log_message(self, format: str, *args: Any) -> None:
        """Do not log requests."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        address: Any = self.server.server_address
        host, port = address[0], address[1]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[f"HTTP_{key}"] = value
        response: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            response["status"], response["headers"] = status, headers

        payload = b"".join(self.app(environ, start_response))
        code, _, reason = response["status"].partition(" ")
        self.send_response(int(code), reason)
        for name, value in response["headers"]:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class QuietHandler(MotoRequestHandler):
    """moto's werkzeug request handler without the per-request access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Do not log requests."""


def main(argv: list[str] | None = None) -> int:
    """Start the server and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server", choices=("keepalive", "werkzeug"), default="keepalive")
    args = parser.parse_args(argv)
    speed_up_moto()
    app = SerialApp(DomainDispatcherApplication(create_backend_app), create_backend_app("dynamodb"))
    server: Any
    if args.server == "werkzeug":
        server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)
    else:
        handler = type("Handler", (KeepAliveHandler,), {"app": staticmethod(app)})
        server = ThreadingHTTPServer((args.host, args.port), handler)
        server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    def orphaned(parent: int = os.getppid()) -> None:
        # the test session that started us died without stopping us: stop anyway
        while os.getppid() == parent:
            time.sleep(0.5)
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=orphaned, daemon=True).start()
    print(f"PORT={server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    sys.stdout.flush()
    os._exit(0)  # skip tearing down moto's many modules: nothing is left to save


if __name__ == "__main__":
    sys.exit(main())
