"""Idempotency-Key: a retried mutation returns the original result instead of acting twice.

A mutation sent with ``Idempotency-Key: K`` is recorded under ``(tenant, K)``
with a fingerprint of the request (method, path, caller, ``If-Match`` and the
validated body). The first request reserves the key, runs, and stores its
response (status, body, a few headers); a retry with the same key and the same
fingerprint gets that stored response back, marked ``Idempotent-Replayed:
true``. The same key with a different request is refused
(``idempotency-key-reused``); a retry while the first is still running gets
``idempotency-key-in-use`` (retryable). Responses of 5xx are not stored: the key
is released so that a retry runs again.

The record store is a port with memory, SQLite and DynamoDB adapters. It is
tenant-scoped (one tenant's keys never answer another's) and bounded: records
expire after a TTL (24 hours by default) and SQLite keeps at most
``max_per_tenant`` records per tenant, dropping the oldest.
"""

from __future__ import annotations

import enum
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

from orchestrator.errors import InvalidStoreUrl, StoreError, StoreUnavailable

__all__ = [
    "KEY_PATTERN",
    "Begin",
    "BeginOutcome",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "SqliteIdempotencyStore",
    "StoredResponse",
    "fingerprint",
    "open_idempotency_store",
]

KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
"""An Idempotency-Key: 1 to 255 visible ASCII characters (a UUID is a good choice)."""

PENDING_TIMEOUT: Final = timedelta(seconds=60)
"""A reservation older than this belongs to a request that died; a retry may take it over."""

REPLAYED_HEADERS: Final = ("content-type", "etag", "location")


@dataclass(frozen=True)
class StoredResponse:
    """The parts of a response a replay gives back."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def encode_headers(self) -> str:
        return json.dumps(dict(self.headers), sort_keys=True)


class BeginOutcome(enum.Enum):
    """What :meth:`IdempotencyStore.begin` found."""

    NEW = "new"
    """The key is reserved for this request: run it, then ``finish`` or ``release``."""
    REPLAY = "replay"
    """The same request already finished: return ``response``."""
    IN_PROGRESS = "in_progress"
    """The same request is still running elsewhere."""
    MISMATCH = "mismatch"
    """The key was used for a different request."""


@dataclass(frozen=True)
class Begin:
    """The outcome of reserving a key, with the stored response for a replay."""

    outcome: BeginOutcome
    response: StoredResponse | None = None


def fingerprint(*parts: object) -> str:
    """A stable digest of the request parts (JSON-encoded, sorted keys)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IdempotencyStore(Protocol):
    """Records of Idempotency-Key requests, by (tenant, key)."""

    def init(self) -> None:
        """Create the table if missing (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def begin(self, tenant_id: str, key: str, digest: str, now: datetime) -> Begin:
        """Reserve ``key`` for the request ``digest``, or say why not."""
        ...

    def finish(
        self, tenant_id: str, key: str, digest: str, response: StoredResponse, now: datetime
    ) -> None:
        """Store the response of the request that reserved ``key``."""
        ...

    def release(self, tenant_id: str, key: str, digest: str) -> None:
        """Drop an unfinished reservation (the request failed with a 5xx: let a retry run)."""
        ...


@dataclass
class _Record:
    digest: str
    created_at: datetime
    expires_at: datetime
    response: StoredResponse | None = None


class MemoryIdempotencyStore:
    """In-process records (tests, the memory plan store); bounded like the SQLite one."""

    def __init__(
        self, *, ttl: timedelta = timedelta(hours=24), max_per_tenant: int = 10_000
    ) -> None:
        self._ttl = ttl
        self._max = max_per_tenant
        self._records: dict[str, dict[str, _Record]] = {}
        self._lock = threading.Lock()

    def init(self) -> None:
        """Nothing to create."""

    def close(self) -> None:
        """Nothing to release."""

    def begin(self, tenant_id: str, key: str, digest: str, now: datetime) -> Begin:
        with self._lock:
            records = self._records.setdefault(tenant_id, {})
            record = records.get(key)
            if record is not None and record.expires_at <= now:
                del records[key]
                record = None
            if record is not None:
                found = record
                return _decide(
                    found.digest,
                    found.response,
                    found.created_at,
                    digest,
                    now,
                    lambda: _take_over(found, now),
                )
            for old, rec in list(records.items()):
                if rec.expires_at <= now:
                    del records[old]
            while len(records) >= self._max:
                oldest = min(records, key=lambda k: records[k].created_at)
                del records[oldest]
            records[key] = _Record(digest, now, now + self._ttl)
            return Begin(BeginOutcome.NEW)

    def finish(
        self, tenant_id: str, key: str, digest: str, response: StoredResponse, now: datetime
    ) -> None:
        with self._lock:
            record = self._records.get(tenant_id, {}).get(key)
            if record is not None and record.digest == digest:
                record.response = response

    def release(self, tenant_id: str, key: str, digest: str) -> None:
        with self._lock:
            records = self._records.get(tenant_id, {})
            record = records.get(key)
            if record is not None and record.digest == digest and record.response is None:
                del records[key]


def _take_over(record: _Record, now: datetime) -> None:
    record.created_at = now


def _decide(
    stored_digest: str,
    response: StoredResponse | None,
    created_at: datetime,
    digest: str,
    now: datetime,
    take_over: Callable[[], None],
) -> Begin:
    """The outcome for an existing, unexpired record (shared by the adapters)."""
    if stored_digest != digest:
        return Begin(BeginOutcome.MISMATCH)
    if response is not None:
        return Begin(BeginOutcome.REPLAY, response)
    if now - created_at >= PENDING_TIMEOUT:
        take_over()
        return Begin(BeginOutcome.NEW)
    return Begin(BeginOutcome.IN_PROGRESS)


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS idempotency (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (tenant_id, expires_at);
"""


class SqliteIdempotencyStore:
    """Records in their own SQLite file (WAL); safe across threads and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        ttl: timedelta = timedelta(hours=24),
        max_per_tenant: int = 10_000,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self._ttl = ttl
        self._max = max_per_tenant
        self._busy = busy_timeout_ms
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def init(self) -> None:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise _mapped(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path.parent and not self.path.parent.exists():
                raise StoreError(f"idempotency store directory `{self.path.parent}` does not exist")
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._busy)}")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def begin(self, tenant_id: str, key: str, digest: str, now: datetime) -> Begin:
        stamp = _stamp(now)
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = self._begin(conn, tenant_id, key, digest, now, stamp)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _mapped(exc) from exc
            return result

    def _begin(
        self,
        conn: sqlite3.Connection,
        tenant_id: str,
        key: str,
        digest: str,
        now: datetime,
        stamp: str,
    ) -> Begin:
        row = conn.execute(
            "SELECT digest, created_at, expires_at, status, headers, body FROM idempotency "
            "WHERE tenant_id = ? AND key = ?",
            (tenant_id, key),
        ).fetchone()
        if row is not None and row[2] > stamp:
            response = (
                StoredResponse(int(row[3]), bytes(row[5] or b""), json.loads(row[4] or "{}"))
                if row[3] is not None
                else None
            )

            def take_over() -> None:
                conn.execute(
                    "UPDATE idempotency SET created_at = ? WHERE tenant_id = ? AND key = ?",
                    (stamp, tenant_id, key),
                )

            created = datetime.strptime(row[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            return _decide(row[0], response, created, digest, now, take_over)
        conn.execute(
            "DELETE FROM idempotency WHERE tenant_id = ? AND expires_at <= ?", (tenant_id, stamp)
        )
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM idempotency WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()
        if count >= self._max:
            conn.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                "WHERE tenant_id = ? ORDER BY created_at LIMIT ?)",
                (tenant_id, count - self._max + 1),
            )
        conn.execute(
            "INSERT OR REPLACE INTO idempotency (tenant_id, key, digest, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (tenant_id, key, digest, stamp, _stamp(now + self._ttl)),
        )
        return Begin(BeginOutcome.NEW)

    def finish(
        self, tenant_id: str, key: str, digest: str, response: StoredResponse, now: datetime
    ) -> None:
        with self._lock:
            try:
                self._connection().execute(
                    "UPDATE idempotency SET status = ?, headers = ?, body = ? "
                    "WHERE tenant_id = ? AND key = ? AND digest = ?",
                    (
                        response.status,
                        response.encode_headers(),
                        response.body,
                        tenant_id,
                        key,
                        digest,
                    ),
                )
            except sqlite3.Error as exc:
                raise _mapped(exc) from exc

    def release(self, tenant_id: str, key: str, digest: str) -> None:
        with self._lock:
            try:
                self._connection().execute(
                    "DELETE FROM idempotency WHERE tenant_id = ? AND key = ? AND digest = ? "
                    "AND status IS NULL",
                    (tenant_id, key, digest),
                )
            except sqlite3.Error as exc:
                raise _mapped(exc) from exc


def _stamp(when: datetime) -> str:
    """A fixed-width UTC timestamp: such strings sort in time order."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mapped(exc: sqlite3.Error) -> StoreError:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreUnavailable(f"idempotency store is busy: {exc}")
    return StoreError(f"idempotency store error: {exc}")


def open_idempotency_store(
    url: str, *, ttl: timedelta = timedelta(hours=24), max_per_tenant: int = 10_000
) -> IdempotencyStore:
    """The store a URL names: ``sqlite:///path``, ``dynamodb://PREFIX?region=R`` or ``memory://``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)[1:]
        if parts.netloc or not path:
            raise InvalidStoreUrl(f"idempotency store URL `{url}`: use `sqlite:///path.db`")
        return SqliteIdempotencyStore(path, ttl=ttl, max_per_tenant=max_per_tenant)
    if scheme == "dynamodb":
        from orchestrator.api.idempotency_dynamodb import DynamoDBIdempotencyStore

        region = None
        if parts.query:
            for pair in parts.query.split("&"):
                name, _, value = pair.partition("=")
                if name == "region" and value:
                    region = unquote(value)
        return DynamoDBIdempotencyStore(unquote(parts.netloc), region=region, ttl=ttl)
    if scheme == "memory":
        return MemoryIdempotencyStore(ttl=ttl, max_per_tenant=max_per_tenant)
    raise InvalidStoreUrl(
        f"idempotency store URL `{url}`: unknown scheme `{parts.scheme}` "
        "(use sqlite, dynamodb or memory)"
    )
