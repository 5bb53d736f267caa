"""What only the SQLite adapter has: schema versions, WAL, locking, missing files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.adapters.sqlite import SCHEMA_VERSION, SqliteStore
from orchestrator.errors import StoreNotInitialized, StoreUnavailable
from support.plans import created, draft, make_plan


def test_init_records_the_schema_version_and_enables_wal(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    store = SqliteStore(path)
    store.init()
    store.init()
    store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    store = SqliteStore(path)
    store.init()
    store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()
    newer = SqliteStore(path)
    try:
        with pytest.raises(StoreNotInitialized, match="newer than this code supports"):
            newer.get_plan("acme", "x")
        with pytest.raises(StoreNotInitialized, match="newer"):
            newer.init()
    finally:
        newer.close()


def test_an_older_schema_asks_for_init_and_init_migrates(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.close()
    store = SqliteStore(path)
    try:
        with pytest.raises(StoreNotInitialized, match="has no plan store schema"):
            store.get_plan("acme", "x")
        store.init()
        plan = make_plan()
        store.create_plan(plan, created(plan))
        assert store.get_plan("acme", plan.plan_id).version == 1
    finally:
        store.close()


def test_a_held_write_lock_reads_as_unavailable_and_retryable(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    setup = SqliteStore(path)
    setup.init()
    plan = make_plan()
    setup.create_plan(plan, created(plan))
    setup.close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store = SqliteStore(path, busy_timeout_ms=50)
    try:
        assert store.get_plan("acme", plan.plan_id).version == 1  # readers are not blocked
        with pytest.raises(StoreUnavailable) as info:
            store.append_ledger("acme", plan.plan_id, [draft()])
        assert info.value.retryable
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert len(store.append_ledger("acme", plan.plan_id, [draft()])) == 1
    finally:
        store.close()


def test_an_unopenable_path_is_reported(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "no" / "such" / "dir" / "plans.db")
    with pytest.raises(StoreNotInitialized, match="cannot open sqlite database"):
        store.init()
    store.close()


def test_due_plans_use_the_partial_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "plans.db")
    store.init()
    store.close()
    conn = sqlite3.connect(tmp_path / "plans.db")
    try:
        plan = conn.execute(
            """EXPLAIN QUERY PLAN SELECT tenant_id, plan_id, next_due_key FROM plans
               WHERE next_due_key <= ? ORDER BY next_due_key, tenant_id, plan_id LIMIT ?""",
            ("2025", 10),
        ).fetchall()
    finally:
        conn.close()
    assert "USING COVERING INDEX plans_due" in " ".join(str(row) for row in plan)
