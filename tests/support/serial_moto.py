"""A moto server that handles one request at a time.

moto's server runs every request on its own thread, and a failing DynamoDB
transaction restores a snapshot of the whole table taken before it started, so
concurrent writers can lose acknowledged writes (see FACTS.md). Wrapping moto's
WSGI app in a lock makes each request atomic with respect to the others, which is
what DynamoDB guarantees.

Serialized, the server is the bottleneck of every multi-process test, and two
of moto's costs grow with the tables rather than with the request
(:func:`speed_up_moto` removes both, without changing any answer):

- before a transaction, moto deep-copies every table it names, to put the copy
  back if the transaction fails: with a few thousand ledger entries that is tens
  of milliseconds per transaction, and the tick race's ~2,300 transactions over
  200 plans spent most of their time there. An undo log of only the items the
  transaction names restores exactly the same state (:class:`TransactionUndo`);
- a query sorts every item of the table by primary key before picking the ones
  it wants. It now starts from the query's hash-key bucket (table queries) or
  from the unsorted items (index queries, which sort their result anyway).

tests/store/test_moto_server.py checks, against this server, that cancelled and
refused transactions leave tables, indexes and queries exactly as they were,
that racing conditional writes and transactions have one winner, and that
paginated queries return the items in key order.

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
import contextlib
import copy
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
    """Remove per-request costs of moto that do not change what it answers.

    - ``BaseResponse.call_action`` lists the handler's methods with
      ``inspect.getmembers`` on every request; the list never changes, so cache it.
    - ``transact_write_items`` deep-copies every table a transaction names
      (once per item naming it) before applying it, to put the copies back if the
      transaction fails: its cost grows with the tables (a 3,000-item ledger
      table makes every transaction take tens of milliseconds). Instead, an undo
      log keeps a copy of only the items the transaction names (a transaction
      writes nothing else; moto derives index contents from the items at query
      time) and puts them back, absent items removed, if the transaction raises
      for any reason. See :class:`TransactionUndo`.

    Requests are serialized by :class:`SerialApp`, so the patched code never runs
    concurrently with itself.
    """
    import functools

    from moto.core import responses
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(  # type: ignore[attr-defined]
        responses.method_names_from_class  # type: ignore[attr-defined]
    )

    original_query = Table.query

    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None and hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        self.all_items = functools.partial(  # type: ignore[method-assign]
            _query_candidates, self, None if index_name else hash_key
        )
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]

    undo = TransactionUndo()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with undo.transaction(self, transact_items):
            original(self, transact_items)

    models.copy = undo  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _query_candidates(table: Any, hash_key: Any) -> list[Any]:
    """The items a query looks at, for ``Table.all_items`` during ``Table.query``.

    moto's query starts from every item of the table, sorted by primary key,
    and keeps those that match. A table query keeps the items of its hash key,
    then sorts them by range key: the hash key's bucket gives the same result.
    An index query sorts what it keeps by the index keys and the table keys,
    which are unique, so the order it starts from does not matter.
    """
    if hash_key is None:
        buckets = table.items.values()
    else:
        bucket = table.items.get(hash_key)
        buckets = [] if bucket is None else [bucket]
    if not table.range_key_attr:
        return list(buckets)
    return [item for bucket in buckets for item in bucket.values()]


class TransactionUndo:
    """All-or-nothing for moto's ``TransactWriteItems`` without copying whole tables.

    It stands in for the ``copy`` module inside ``moto.dynamodb.models``, whose
    only uses are the transaction's table snapshots and ``update_item``'s copy of
    the old item. During a transaction whose items it could key, a table
    "snapshot" is the table itself (so moto's own rollback, which assigns the
    snapshots back, changes nothing) and :meth:`transaction` restores every
    named item from its log instead: the item as it was (a deep copy for an
    ``Update``, which changes the item in place; ``Put`` and ``Delete`` replace or
    drop the item object, so the object itself is kept), or no item, and no
    hash-key bucket if there was none. ``ConditionCheck`` items are logged too (moto's lookup of a
    missing item leaves an empty bucket behind).

    A table with a stream, or an item whose key cannot be read from the request,
    falls back to moto's way (one whole-table copy per table per transaction,
    restored whole), so its behaviour is never changed, only its cost.
    """

    def __init__(self) -> None:
        self.mode: str | None = None  # None (no transaction), "undo" or "snapshot"
        self.snapshots: dict[int, Any] = {}

    def deepcopy(self, obj: Any, memo: Any = None) -> Any:
        """``copy.deepcopy``, except for tables during a transaction (see the class)."""
        from moto.dynamodb.models.table import Table

        if self.mode is None or not isinstance(obj, Table):
            return copy.deepcopy(obj, memo)
        if self.mode == "undo":
            return obj
        if id(obj) not in self.snapshots:
            self.snapshots[id(obj)] = copy.deepcopy(obj)
        return self.snapshots[id(obj)]

    @contextlib.contextmanager
    def transaction(self, backend: Any, transact_items: list[dict[str, Any]]) -> Iterator[None]:
        """Log the named items, run the transaction, restore them if it raises."""
        log = self._log(backend, transact_items)
        self.mode = "snapshot" if log is None else "undo"
        try:
            yield
        except BaseException:
            if log is not None:
                for table, hash_key, range_key, had_bucket, old in reversed(log):
                    self._restore(table, hash_key, range_key, had_bucket, old)
            raise
        finally:
            self.mode = None
            self.snapshots = {}

    @staticmethod
    def _log(
        backend: Any, transact_items: list[dict[str, Any]]
    ) -> list[tuple[Any, Any, Any, bool, Any]] | None:
        """(table, hash key, range key, bucket existed, the item or None) per named item."""
        from moto.dynamodb.exceptions import ResourceNotFoundException
        from moto.dynamodb.models.dynamo_type import DynamoType

        log: list[tuple[Any, Any, Any, bool, Any]] = []
        seen: set[tuple[int, Any, Any]] = set()
        try:
            for entry in transact_items:
                for op_type, op in entry.items():
                    try:
                        table = backend.get_table(op["TableName"])  # a name or an ARN
                    except ResourceNotFoundException:
                        continue  # moto cancels the item: it writes nothing
                    if table.stream_shard is not None:
                        return None
                    key = op["Item"] if op_type == "Put" else op["Key"]
                    hash_key = DynamoType(key[table.hash_key_attr])
                    range_key = (
                        DynamoType(key[table.range_key_attr]) if table.has_range_key else None
                    )
                    if (id(table), hash_key, range_key) in seen:
                        continue  # moto refuses the transaction; the first log entry restores
                    seen.add((id(table), hash_key, range_key))
                    had_bucket = hash_key in table.items
                    if range_key is None:
                        old = table.items.get(hash_key)
                    else:
                        old = table.items[hash_key].get(range_key) if had_bucket else None
                    if op_type == "Update":
                        old = copy.deepcopy(old)  # updated in place; a put or delete replaces it
                    log.append((table, hash_key, range_key, had_bucket, old))
        except (KeyError, TypeError, AttributeError, ValueError):
            return None  # a malformed item: moto rejects it; snapshots restore whatever it did
        return log

    @staticmethod
    def _restore(table: Any, hash_key: Any, range_key: Any, had_bucket: bool, old: Any) -> None:
        if range_key is None:
            if old is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = old
            return
        if not had_bucket:
            table.items.pop(hash_key, None)  # every item in it is new: this log names them
            return
        bucket = table.items[hash_key]
        if old is None:
            bucket.pop(range_key, None)
        else:
            bucket[range_key] = old


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
