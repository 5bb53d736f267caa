"""SQLite plan store: the embedded default (stdlib ``sqlite3``, WAL).

Several processes may share one database file. Every write runs in a
``BEGIN IMMEDIATE`` transaction (one writer at a time; others wait up to the busy
timeout), reads that must agree with each other share one read transaction, and
each plan change commits together with its ledger entries. The ledger table
also refuses UPDATE and DELETE through triggers.

The schema is versioned: ``schema_version`` records every applied migration and
:meth:`SqliteStore.init` applies the missing ones, forward only.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from orchestrator.adapters import codec
from orchestrator.errors import (
    AlreadyExists,
    CorruptRecord,
    FenceLost,
    GuardConflict,
    NotFound,
    StoreError,
    StoreNotInitialized,
    StoreUnavailable,
    VersionConflict,
)
from orchestrator.ledger import LedgerDraft, LedgerEntry, LedgerHead, chain_entries
from orchestrator.records import Fence, Page, PlanRef, StepAttempt
from planpolicy.plan import RevenuePlanV1

__all__ = ["SCHEMA_VERSION", "TEST_PAUSE_ENV", "SqliteStore"]

TEST_PAUSE_ENV: Final = "PLANSTORE_TEST_PAUSE_IN_TXN"
"""Test hook: seconds ``update_plan`` sleeps between the plan write and the ledger
insert, inside the transaction (announced on stderr), so a test can kill it there."""

_MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE plans (
                tenant_id TEXT NOT NULL,
                plan_id TEXT NOT NULL,
                account_id TEXT NOT NULL,
                plan_type TEXT NOT NULL,
                status TEXT NOT NULL,
                list_key TEXT NOT NULL,
                next_due_key TEXT,
                version INTEGER NOT NULL,
                ledger_seq INTEGER NOT NULL,
                ledger_hash TEXT NOT NULL,
                holds_guard INTEGER NOT NULL DEFAULT 0,
                doc TEXT NOT NULL,
                PRIMARY KEY (tenant_id, plan_id)
            )""",
            "CREATE INDEX plans_by_tenant ON plans (tenant_id, list_key)",
            "CREATE INDEX plans_by_account ON plans (tenant_id, account_id, list_key)",
            """CREATE INDEX plans_due ON plans (next_due_key, tenant_id, plan_id)
                WHERE next_due_key IS NOT NULL""",
            "CREATE INDEX plans_by_id ON plans (plan_id)",
            """CREATE TABLE guards (
                tenant_id TEXT NOT NULL,
                account_id TEXT NOT NULL,
                plan_type TEXT NOT NULL,
                plan_id TEXT NOT NULL,
                PRIMARY KEY (tenant_id, account_id, plan_type)
            )""",
            """CREATE TABLE leases (
                tenant_id TEXT NOT NULL,
                plan_id TEXT NOT NULL,
                token INTEGER NOT NULL,
                owner TEXT,
                expires_key TEXT,
                PRIMARY KEY (tenant_id, plan_id)
            )""",
            """CREATE TABLE attempts (
                tenant_id TEXT NOT NULL,
                plan_id TEXT NOT NULL,
                step_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                doc TEXT NOT NULL,
                PRIMARY KEY (tenant_id, plan_id, step_id, attempt)
            )""",
            """CREATE TABLE ledger (
                tenant_id TEXT NOT NULL,
                plan_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                entry TEXT NOT NULL,
                PRIMARY KEY (tenant_id, plan_id, seq)
            )""",
            """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
                BEGIN SELECT RAISE(ABORT, 'the plan ledger is append-only'); END""",
            """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
                BEGIN SELECT RAISE(ABORT, 'the plan ledger is append-only'); END""",
        ),
    ),
)

SCHEMA_VERSION: Final = _MIGRATIONS[-1][0]
"""The schema version this code writes and reads."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_GUARD_HOLDER: Final = (
    "SELECT plan_id FROM guards WHERE tenant_id = ? AND account_id = ? AND plan_type = ?"
)


class SqliteStore:
    """A :class:`~orchestrator.ports.ManagedStore` in one SQLite database file."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._test_pause = float(os.environ.get(TEST_PAUSE_ENV, "0") or 0)

    # -- lifecycle -----------------------------------------------------------

    def init(self) -> None:
        """Create the database if missing and apply pending migrations (idempotent)."""
        with self._lock:
            conn = self._connect(create=True)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        """CREATE TABLE IF NOT EXISTS schema_version (
                            version INTEGER PRIMARY KEY,
                            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"""
                    )
                    current = self._schema_version(conn)
                    if current > SCHEMA_VERSION:
                        raise StoreNotInitialized(self._too_new(current))
                    for version, statements in _MIGRATIONS:
                        if version <= current:
                            continue
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._mapped(exc) from exc
            self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- plans ---------------------------------------------------------------

    def create_plan(self, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.create_plan`."""
        codec.check_entries(entries, at_least=1)
        stored, doc = codec.stored_form(plan, version=1)
        chained = chain_entries(plan.tenant_id, plan.plan_id, LedgerHead(), entries, plan_version=1)
        with self._write() as conn:
            try:
                conn.execute(
                    """INSERT INTO plans (tenant_id, plan_id, account_id, plan_type, status,
                        list_key, next_due_key, version, ledger_seq, ledger_hash, doc)
                       VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)""",
                    (
                        plan.tenant_id,
                        plan.plan_id,
                        plan.account_id,
                        plan.plan_type,
                        plan.status,
                        codec.list_key(stored),
                        _due_key(stored),
                        chained[-1].seq,
                        chained[-1].hash,
                        doc,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(plan.tenant_id, plan.plan_id) from exc
            self._insert_entries(conn, chained)
        return stored

    def get_plan(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.get_plan`."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT doc FROM plans WHERE tenant_id = ? AND plan_id = ?", (tenant_id, plan_id)
            ).fetchone()
        if row is None:
            raise NotFound(tenant_id, plan_id)
        return codec.plan_from_json(row[0])

    def list_plans(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RevenuePlanV1]:
        """See :meth:`orchestrator.ports.PlanStore.list_plans`."""
        codec.check_limit(limit)
        scope = {"tenant": tenant_id, "status": status, "account": account_id}
        after = str(codec.decode_cursor(cursor, scope)) if cursor else ""
        lower, upper = (f"{status}#", f"{status}$") if status is not None else ("", "\U0010ffff")
        sql = "SELECT list_key, doc FROM plans WHERE tenant_id = ?"
        args: list[Any] = [tenant_id]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        sql += " AND list_key > ? AND list_key >= ? AND list_key < ? ORDER BY list_key LIMIT ?"
        args += [after, lower, upper, limit + 1]
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        page = rows[:limit]
        items = [codec.plan_from_json(doc) for _, doc in page]
        next_cursor = codec.encode_cursor(scope, page[-1][0]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    def update_plan(
        self,
        plan: RevenuePlanV1,
        *,
        expected_version: int,
        entries: Sequence[LedgerDraft] = (),
        fence: Fence | None = None,
        activate_guard: bool = False,
        release_guard: bool = False,
        attempts: Sequence[StepAttempt] = (),
    ) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.update_plan`."""
        codec.check_update_args(
            plan,
            entries=entries,
            fence=fence,
            activate_guard=activate_guard,
            release_guard=release_guard,
            attempts=attempts,
        )
        tenant_id, plan_id = plan.tenant_id, plan.plan_id
        new_version = expected_version + 1
        stored, doc = codec.stored_form(plan, version=new_version)
        with self._write() as conn:
            row = conn.execute(
                """SELECT version, account_id, plan_type, ledger_seq, ledger_hash, holds_guard,
                          list_key, next_due_key
                   FROM plans WHERE tenant_id = ? AND plan_id = ?""",
                (tenant_id, plan_id),
            ).fetchone()
            if row is None:
                raise NotFound(tenant_id, plan_id)
            version, account_id, plan_type, seq, head_hash, holds_guard, *indexed = row
            codec.check_stored_identity(plan_id, account_id, plan_type, plan)
            if fence is not None:
                self._check_fence(conn, fence)
            if version != expected_version:
                raise VersionConflict(tenant_id, plan_id, expected_version, version)
            guard = (tenant_id, account_id, plan_type)
            holder = None
            if activate_guard or release_guard:
                holder_row = conn.execute(_GUARD_HOLDER, guard).fetchone()
                holder = holder_row[0] if holder_row else None
            if activate_guard and holder not in (None, plan_id):
                raise GuardConflict(*guard, holder)
            for attempt in attempts:
                if not self._attempt_exists(conn, attempt):
                    raise NotFound(tenant_id, attempt.idempotency_key, "attempt")

            chained = chain_entries(
                tenant_id, plan_id, LedgerHead(seq, head_hash), entries, plan_version=new_version
            )
            head = (
                LedgerHead(chained[-1].seq, chained[-1].hash)
                if chained
                else LedgerHead(seq, head_hash)
            )
            holds = bool(holds_guard)
            if activate_guard and holder is None:
                conn.execute(
                    """INSERT INTO guards (tenant_id, account_id, plan_type, plan_id)
                       VALUES (?, ?, ?, ?)""",
                    (*guard, plan_id),
                )
            holds = holds or activate_guard
            if release_guard and holds and holder == plan_id:
                conn.execute(
                    "DELETE FROM guards WHERE tenant_id = ? AND account_id = ? AND plan_type = ?",
                    guard,
                )
                holds = False
            changes: dict[str, object] = {
                "version": new_version,
                "ledger_seq": head.seq,
                "ledger_hash": head.hash,
                "holds_guard": int(holds),
                "doc": doc,
            }
            # rewrite index entries only when their keys move (most updates keep them)
            list_key, due_key = codec.list_key(stored), _due_key(stored)
            if [list_key, due_key] != indexed:
                changes.update(status=stored.status, list_key=list_key, next_due_key=due_key)
            assignments = ", ".join(f"{column} = ?" for column in changes)
            conn.execute(
                f"UPDATE plans SET {assignments} WHERE tenant_id = ? AND plan_id = ? AND version = ?",
                (*changes.values(), tenant_id, plan_id, expected_version),
            )
            if self._test_pause:
                sys.stderr.write(f"{TEST_PAUSE_ENV}: paused inside the transaction\n")
                sys.stderr.flush()
                time.sleep(self._test_pause)
            self._insert_entries(conn, chained)
            for attempt in attempts:
                assert fence is not None  # check_update_args guarantees it
                self._write_attempt(conn, attempt, fence, replace=True)
        return stored

    def active_plan_for(self, tenant_id: str, account_id: str, plan_type: str) -> str | None:
        """See :meth:`orchestrator.ports.PlanStore.active_plan_for`."""
        with self._read() as conn:
            row = conn.execute(
                _GUARD_HOLDER,
                (tenant_id, account_id, plan_type),
            ).fetchone()
        return str(row[0]) if row else None

    def due_plans(self, now: datetime, *, limit: int = 100) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.PlanStore.due_plans` (served by a partial index)."""
        codec.check_limit(limit)
        with self._read() as conn:
            rows = conn.execute(
                """SELECT tenant_id, plan_id, next_due_key FROM plans
                   WHERE next_due_key <= ? ORDER BY next_due_key, tenant_id, plan_id LIMIT ?""",
                (codec.time_key(now), limit),
            ).fetchall()
        return [PlanRef(t, p, codec.parse_time_key(k)) for t, p, k in rows]

    # -- leases and attempts -------------------------------------------------

    def acquire_lease(
        self, tenant_id: str, plan_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> Fence | None:
        """See :meth:`orchestrator.ports.PlanStore.acquire_lease`."""
        expires = now + ttl
        with self._write() as conn:
            if not self._plan_exists(conn, tenant_id, plan_id):
                raise NotFound(tenant_id, plan_id)
            row = conn.execute(
                "SELECT token, owner, expires_key FROM leases WHERE tenant_id = ? AND plan_id = ?",
                (tenant_id, plan_id),
            ).fetchone()
            token, holder, expires_key = row if row else (0, None, None)
            live = expires_key is not None and expires_key > codec.time_key(now)
            if holder is not None and holder != owner and live:
                return None
            conn.execute(
                """INSERT INTO leases (tenant_id, plan_id, token, owner, expires_key)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (tenant_id, plan_id) DO UPDATE SET
                     token = excluded.token, owner = excluded.owner,
                     expires_key = excluded.expires_key""",
                (tenant_id, plan_id, token + 1, owner, codec.time_key(expires)),
            )
        return Fence(tenant_id, plan_id, owner, token + 1, expires)

    def release_lease(self, fence: Fence) -> None:
        """See :meth:`orchestrator.ports.PlanStore.release_lease`."""
        with self._write() as conn:
            conn.execute(
                """UPDATE leases SET owner = NULL, expires_key = NULL
                   WHERE tenant_id = ? AND plan_id = ? AND token = ?""",
                (fence.tenant_id, fence.plan_id, fence.token),
            )

    def put_attempt(self, attempt: StepAttempt, fence: Fence) -> bool:
        """See :meth:`orchestrator.ports.PlanStore.put_attempt`."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        with self._write() as conn:
            self._check_fence(conn, fence)
            if self._attempt_exists(conn, attempt):
                return False
            self._write_attempt(conn, attempt, fence, replace=False)
        return True

    def get_attempt(
        self, tenant_id: str, plan_id: str, step_id: uuid.UUID, attempt: int
    ) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.get_attempt`."""
        with self._read() as conn:
            row = conn.execute(
                """SELECT doc FROM attempts
                   WHERE tenant_id = ? AND plan_id = ? AND step_id = ? AND attempt = ?""",
                (tenant_id, plan_id, str(step_id), attempt),
            ).fetchone()
        if row is None:
            raise NotFound(tenant_id, f"{plan_id}:{step_id}:{attempt}", "attempt")
        return StepAttempt.model_validate_json(row[0])

    def update_attempt(self, attempt: StepAttempt, fence: Fence) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.update_attempt`."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        with self._write() as conn:
            self._check_fence(conn, fence)
            if not self._attempt_exists(conn, attempt):
                raise NotFound(attempt.tenant_id, attempt.idempotency_key, "attempt")
            return self._write_attempt(conn, attempt, fence, replace=True)

    def list_attempts(self, tenant_id: str, plan_id: str) -> list[StepAttempt]:
        """See :meth:`orchestrator.ports.PlanStore.list_attempts`."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT doc FROM attempts WHERE tenant_id = ? AND plan_id = ?
                   ORDER BY step_id, attempt""",
                (tenant_id, plan_id),
            ).fetchall()
        return [StepAttempt.model_validate_json(doc) for (doc,) in rows]

    # -- ledger --------------------------------------------------------------

    def ledger(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.ledger`."""
        return self.ledger_snapshot(tenant_id, plan_id)[1]

    def append_ledger(
        self,
        tenant_id: str,
        plan_id: str,
        entries: Sequence[LedgerDraft],
        *,
        fence: Fence | None = None,
    ) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.append_ledger`."""
        codec.check_entries(entries)
        if fence is not None:
            codec.check_fence_scope(fence, tenant_id, plan_id)
        with self._write() as conn:
            row = conn.execute(
                """SELECT version, ledger_seq, ledger_hash FROM plans
                   WHERE tenant_id = ? AND plan_id = ?""",
                (tenant_id, plan_id),
            ).fetchone()
            if row is None:
                raise NotFound(tenant_id, plan_id)
            if fence is not None:
                self._check_fence(conn, fence)
            version, seq, head_hash = row
            chained = chain_entries(
                tenant_id, plan_id, LedgerHead(seq, head_hash), entries, plan_version=version
            )
            if chained:
                self._insert_entries(conn, chained)
                conn.execute(
                    """UPDATE plans SET ledger_seq = ?, ledger_hash = ?
                       WHERE tenant_id = ? AND plan_id = ?""",
                    (chained[-1].seq, chained[-1].hash, tenant_id, plan_id),
                )
        return chained

    # -- admin ---------------------------------------------------------------

    def scan_plans(self) -> Iterator[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.scan_plans`."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT tenant_id, plan_id, next_due_key FROM plans ORDER BY tenant_id, plan_id"
            ).fetchall()
        return iter([PlanRef(t, p, codec.parse_time_key(k) if k else None) for t, p, k in rows])

    def find_plan(self, plan_id: str) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.find_plan`."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT tenant_id, plan_id, next_due_key FROM plans
                   WHERE plan_id = ? ORDER BY tenant_id""",
                (plan_id,),
            ).fetchall()
        return [PlanRef(t, p, codec.parse_time_key(k) if k else None) for t, p, k in rows]

    def ledger_snapshot(self, tenant_id: str, plan_id: str) -> tuple[LedgerHead, list[LedgerEntry]]:
        """See :meth:`orchestrator.ports.StoreAdmin.ledger_snapshot` (one read transaction)."""
        with self._read(snapshot=True) as conn:
            head = conn.execute(
                "SELECT ledger_seq, ledger_hash FROM plans WHERE tenant_id = ? AND plan_id = ?",
                (tenant_id, plan_id),
            ).fetchone()
            if head is None:
                raise NotFound(tenant_id, plan_id)
            rows = conn.execute(
                "SELECT seq, entry FROM ledger WHERE tenant_id = ? AND plan_id = ? ORDER BY seq",
                (tenant_id, plan_id),
            ).fetchall()
        entries = []
        for seq, text in rows:
            try:
                entries.append(codec.entry_from_json(text))
            except CorruptRecord as exc:
                raise CorruptRecord(f"ledger entry seq {seq}: {exc.message}") from exc
        return LedgerHead(head[0], head[1]), entries

    # -- connection and transactions -----------------------------------------

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            raise StoreNotInitialized(
                f"sqlite database `{self.path}` does not exist: run `plan-orchestrator init`"
            )
        mode = "rwc" if create else "rw"
        uri = f"{self.path.absolute().as_uri()}?mode={mode}"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreNotInitialized(f"cannot open sqlite database `{self.path}`: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if not create:
                version = self._schema_version(conn)
                if version == 0:
                    raise StoreNotInitialized(
                        f"sqlite database `{self.path}` has no plan store schema: "
                        "run `plan-orchestrator init`"
                    )
                if version > SCHEMA_VERSION:
                    raise StoreNotInitialized(self._too_new(version))
                if version < SCHEMA_VERSION:
                    raise StoreNotInitialized(
                        f"sqlite database `{self.path}` is at schema version {version}, this code "
                        f"needs {SCHEMA_VERSION}: run `plan-orchestrator init` to migrate"
                    )
        except BaseException:
            conn.close()
            raise
        if not create:
            self._conn = conn
        return conn

    def _too_new(self, version: int) -> str:
        return (
            f"sqlite database `{self.path}` is at schema version {version}, newer than this "
            f"code supports ({SCHEMA_VERSION})"
        )

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return 0
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._lock:
            conn = self._connect(create=False)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._mapped(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._mapped(exc) from exc
                raise

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """A read; with ``snapshot`` several statements see the same committed state."""
        with self._lock:
            conn = self._connect(create=False)
            try:
                if snapshot:
                    conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    if snapshot and conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._mapped(exc) from exc

    def _mapped(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreUnavailable(f"sqlite database `{self.path}` is busy: {text}")
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in text:
            return StoreNotInitialized(
                f"sqlite database `{self.path}` lacks the plan store schema ({text}): "
                "run `plan-orchestrator init`"
            )
        return StoreError(f"sqlite database `{self.path}`: {text}")

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _plan_exists(conn: sqlite3.Connection, tenant_id: str, plan_id: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM plans WHERE tenant_id = ? AND plan_id = ?", (tenant_id, plan_id)
        ).fetchone()
        return row is not None

    @staticmethod
    def _check_fence(conn: sqlite3.Connection, fence: Fence) -> None:
        row = conn.execute(
            "SELECT token FROM leases WHERE tenant_id = ? AND plan_id = ?",
            (fence.tenant_id, fence.plan_id),
        ).fetchone()
        if row is None or row[0] != fence.token:
            raise FenceLost(fence.tenant_id, fence.plan_id, fence.token)

    @staticmethod
    def _attempt_exists(conn: sqlite3.Connection, attempt: StepAttempt) -> bool:
        row = conn.execute(
            """SELECT 1 FROM attempts
               WHERE tenant_id = ? AND plan_id = ? AND step_id = ? AND attempt = ?""",
            (attempt.tenant_id, attempt.plan_id, str(attempt.step_id), attempt.attempt),
        ).fetchone()
        return row is not None

    @staticmethod
    def _write_attempt(
        conn: sqlite3.Connection, attempt: StepAttempt, fence: Fence, *, replace: bool
    ) -> StepAttempt:
        stamped = codec.checked_attempt(attempt, fence=fence.token)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        conn.execute(
            f"""{verb} INTO attempts (tenant_id, plan_id, step_id, attempt, doc)
                VALUES (?, ?, ?, ?, ?)""",
            (
                attempt.tenant_id,
                attempt.plan_id,
                str(attempt.step_id),
                attempt.attempt,
                stamped.model_dump_json(),
            ),
        )
        return stamped

    @staticmethod
    def _insert_entries(conn: sqlite3.Connection, entries: Sequence[LedgerEntry]) -> None:
        conn.executemany(
            "INSERT INTO ledger (tenant_id, plan_id, seq, entry) VALUES (?, ?, ?, ?)",
            [(e.tenant_id, e.plan_id, e.seq, codec.entry_to_json(e)) for e in entries],
        )


def _due_key(plan: RevenuePlanV1) -> str | None:
    return codec.time_key(plan.next_due_at) if plan.next_due_at is not None else None
