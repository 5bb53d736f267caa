"""Plan store benchmark: SQLite write rate against a bare commit, DynamoDB requests per change.

Usage: ``.venv/bin/python tools/bench/bench_store.py [--ops N] [--batches B] [--no-write]``

SQLite: plan updates that carry one ledger entry each (``update_plan`` with a
version check, hash chaining, the plan row, the ledger row, in one
``BEGIN IMMEDIATE`` transaction) against the raw commit rate of a bare
one-row ``INSERT`` transaction on the same kind of database (WAL, same
``synchronous``), measured in the same run in alternating batches. Target: the
store keeps at least 50% of the bare rate.

DynamoDB: requests per plan state change, counted with a botocore event hook on
every request the adapter sends, against a moto server this script starts
(``tests/support/serial_moto.py``). Target: at most 2 per state change. The
plan's life is driven the way the scheduler drives it (read, then writes that
each build on the last), plus one change by a store that has not seen the plan
at its current version (another worker), which reads the bookkeeping first.

The figures replace (or append) the "## Plan store" section of
docs/benchmarks.md unless ``--no-write`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import select
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.adapters.sqlite import SqliteStore
from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.records import AttemptStatus, StepAttempt
from planpolicy.plan import PlanStep, RevenuePlanV1

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"
from benchdoc import write_section  # noqa: E402

SECTION = "## Plan store"
MOTO = REPO / "tests" / "support" / "serial_moto.py"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _plan(plan_id: str = "bench-plan") -> RevenuePlanV1:
    return RevenuePlanV1(
        plan_id=plan_id,
        tenant_id="acme",
        account_id="acct-1",
        plan_type="RENEWAL_DEFENSE",
        plan_type_version=3,
        status="APPROVED",
        objective="keep the renewal",
        steps=[PlanStep(action_type=f"STEP_{i}") for i in range(4)],
        owner="owner-1",
        created_by="proposer-1",
        created_at=T0,
        updated_at=T0,
        expires_at=T0 + timedelta(days=90),
        next_due_at=T0,
    )


def _draft(event: LedgerEvent, reason: str = "benchmark") -> LedgerDraft:
    return LedgerDraft(
        time=T0,
        actor="bench",
        event=event,
        reason=reason,
        bundle_digest="sha256:" + "ab" * 32,
        document_versions={"PlanType/RENEWAL_DEFENSE": 3},
        evidence={"signals": {"open_p1_tickets": 2}},
    )


# -- SQLite ----------------------------------------------------------------------


def _bare_batch(conn: sqlite3.Connection, payload: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bare (body) VALUES (?)", (payload,))
        conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def _store_batch(store: SqliteStore, plan: list[RevenuePlanV1], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        current = plan[0]
        plan[0] = store.update_plan(
            current.model_copy(update={"objective": f"revision {i}"}),
            expected_version=current.version,
            entries=[_draft(LedgerEvent.UPDATED)],
        )
    return n / (time.perf_counter() - start)


def bench_sqlite(synchronous: str, ops: int, batches: int) -> dict[str, float]:
    """Median writes per second of both, over alternating batches."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.db", synchronous=synchronous)
        store.init()
        first = _plan()
        plan = [store.create_plan(first, [_draft(LedgerEvent.CREATED)])]
        bare = sqlite3.connect(Path(tmp) / "bare.db", isolation_level=None)
        bare.execute("PRAGMA journal_mode=WAL")
        bare.execute(f"PRAGMA synchronous={synchronous}")
        bare.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        payload = plan[0].model_dump_json()
        bare_rates, store_rates = [], []
        try:
            _bare_batch(bare, payload, 10)
            _store_batch(store, plan, 10)
            for _ in range(batches):
                bare_rates.append(_bare_batch(bare, payload, ops))
                store_rates.append(_store_batch(store, plan, ops))
        finally:
            bare.close()
            store.close()
    raw, ours = statistics.median(bare_rates), statistics.median(store_rates)
    # the disk's speed drifts with other load: compare each store batch with the
    # bare batch right before it, and take the median of those ratios
    ratio = statistics.median(o / r for o, r in zip(store_rates, bare_rates, strict=True))
    return {"bare": raw, "store": ours, "ratio": ratio}


# -- DynamoDB --------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    """A serialized moto server on a free port (the one the tests use)."""
    proc = subprocess.Popen(
        [sys.executable, str(MOTO), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT="):
            raise RuntimeError(f"moto server did not start: {line!r}")
        endpoint = f"http://127.0.0.1:{line.strip().split('=', 1)[1]}"
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10):
            pass
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def bench_dynamodb() -> tuple[list[tuple[str, int, float]], Counter[str]]:
    """Requests (and moto latency) per store operation along a plan's whole life."""
    with moto_server() as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL_DYNAMODB=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        import boto3

        client = boto3.client("dynamodb", region_name="us-east-1")
        sent: Counter[str] = Counter()
        client.meta.events.register(
            "before-send.dynamodb.*",
            lambda event_name, **kw: sent.update([event_name.rsplit(".", 1)[-1]]),
        )
        store = DynamoDBStore("bench-", client=client)
        store.init()
        rows: list[tuple[str, int, float]] = []
        total: Counter[str] = Counter()

        def measure(name: str, action: Callable[[], Any]) -> Any:
            sent.clear()
            start = time.perf_counter()
            result = action()
            rows.append((name, sum(sent.values()), (time.perf_counter() - start) * 1000))
            total.update(sent)
            return result

        plan = _plan()
        plan = measure(
            "create_plan (+1 entry)", lambda: store.create_plan(plan, [_draft(LedgerEvent.CREATED)])
        )
        fence = measure(
            "acquire_lease",
            lambda: store.acquire_lease("acme", plan.plan_id, "w1", T0, timedelta(minutes=5)),
        )
        plan = measure("get_plan", lambda: store.get_plan("acme", plan.plan_id))

        def change(label: str, event: LedgerEvent, **kwargs: Any) -> None:
            nonlocal plan
            fields = kwargs.pop("fields", {})
            plan = measure(
                f"update_plan: {label}",
                lambda: store.update_plan(
                    plan.model_copy(update=fields),
                    expected_version=plan.version,
                    entries=[_draft(event)],
                    fence=fence,
                    **kwargs,
                ),
            )

        change(
            "activate (guard taken)",
            LedgerEvent.ACTIVATED,
            fields={"status": "ACTIVE"},
            activate_guard=True,
        )
        attempt = StepAttempt(
            tenant_id="acme",
            plan_id=plan.plan_id,
            step_id=plan.steps[0].step_id,
            attempt=1,
            created_at=T0,
            updated_at=T0,
        )
        measure("put_attempt", lambda: store.put_attempt(attempt, fence))
        change(
            "step outcome (+ attempt record)",
            LedgerEvent.STEP_OUTCOME,
            attempts=[attempt.model_copy(update={"status": AttemptStatus.SUCCEEDED})],
        )
        change("pause", LedgerEvent.PAUSED, fields={"status": "PAUSED"})
        change(
            "resume (guard re-taken)",
            LedgerEvent.RESUMED,
            fields={"status": "ACTIVE"},
            activate_guard=True,
        )
        other = DynamoDBStore("bench-", client=client)  # another worker's store
        plan = measure(
            "update_plan: by a store that has not seen this version",
            lambda: other.update_plan(
                plan, expected_version=plan.version, entries=[_draft(LedgerEvent.NOTE)], fence=fence
            ),
        )
        change(
            "complete (guard released; read first)",
            LedgerEvent.COMPLETED,
            fields={"status": "COMPLETED", "next_due_at": None},
            release_guard=True,
        )
        measure(
            "append_ledger (no plan change)",
            lambda: store.append_ledger("acme", plan.plan_id, [_draft(LedgerEvent.NOTE)]),
        )
        measure("release_lease", lambda: store.release_lease(fence))
        measure("due_plans (4 index shards)", lambda: store.due_plans(T0))
        measure("ledger (read all entries)", lambda: store.ledger("acme", plan.plan_id))
        store.close()
        client.close()
    return rows, total


# -- report ----------------------------------------------------------------------


def report(
    sqlite_rows: dict[str, dict[str, float]],
    dynamo_rows: list[tuple[str, int, float]],
    ops: int,
    batches: int,
) -> str:
    """The markdown section."""
    load = os.getloadavg()[0]
    changes = [r for r in dynamo_rows if r[0].startswith("update_plan")]
    per_change = sum(r[1] for r in changes) / len(changes)
    most = max(r[1] for r in changes)
    full = next(r for r in sqlite_rows.values())
    normal = sqlite_rows["NORMAL"]
    added_us = (1 / normal["store"] - 1 / normal["bare"]) * 1e6
    lines = [
        SECTION,
        "",
        f"`.venv/bin/python tools/bench/bench_store.py --ops {ops} --batches {batches}`; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} during the run, {datetime.now(UTC):%Y-%m-%d}.",
        "",
        "SQLite (WAL, one file per side, same `synchronous`): plan updates with one ledger",
        "entry each (`update_plan`: version check, plan row, hash-chained ledger row, one",
        "`BEGIN IMMEDIATE` transaction) against bare one-row `INSERT` transactions, measured",
        f"in {batches} alternating batches of {ops} commits; median rates, and the median of",
        "the ratios of each store batch to the bare batch just before it.",
        "",
        "| synchronous | bare commits/s | plan updates/s | ratio (paired) |",
        "|---|---:|---:|---:|",
    ]
    for mode, row in sqlite_rows.items():
        lines.append(f"| {mode} | {row['bare']:,.0f} | {row['store']:,.0f} | {row['ratio']:.0%} |")
    lines += [
        "",
        f"- target (at least 50% of the bare rate, `synchronous=FULL`, the default): "
        f"**{'met' if full['ratio'] >= 0.5 else 'missed'}** ({full['ratio']:.0%}).",
        "- with `synchronous=FULL` both sides wait for the same fsync per commit, which",
        "  dominates; `NORMAL` shows the store's own CPU cost per write.",
        f"- the store adds about {added_us:,.0f} µs per write over a bare commit (from the",
        "  `NORMAL` rows: validation, JSON, hash chain, five statements); the `FULL` ratio",
        "  stays at or above 50% while a bare commit takes at least that long, i.e. while the",
        f"  disk manages fewer than about {1e6 / added_us:,.0f} fsyncs per second. It is the",
        "  disk's figure, not the store's: on this machine bare `FULL` commits have run at",
        "  160 to 2,100 per second depending on other load.",
        "",
        "DynamoDB: requests per store operation along one plan's life, counted with a",
        "botocore `before-send` hook against the serialized moto server the tests use",
        "(latencies are moto's, not AWS's).",
        "",
        "| operation | requests | ms on moto |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {count} | {ms:.1f} |" for name, count, ms in dynamo_rows]
    lines += [
        "",
        f"- requests per plan state change (`update_plan`): **{per_change:.1f}** on average, "
        f"at most {most}; target at most 2: **{'met' if most <= 2 else 'missed'}**. A change is "
        "one `TransactWriteItems` when the store read or wrote the plan at that version last "
        "(`get_plan` brings the bookkeeping along: version, ledger head, guard flag); "
        "otherwise one consistent `GetItem` of that bookkeeping comes first.",
        "- the scheduler reads a plan under its lease, then builds each write on the last, so",
        "  its writes are one request each; a change after another process's write, or an",
        "  `append_ledger` in between (the ledger put collides on its seq), reads first.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks, print the section, record it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=40, help="commits per batch")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    sqlite_rows = {mode: bench_sqlite(mode, args.ops, args.batches) for mode in ("FULL", "NORMAL")}
    dynamo_rows, _ = bench_dynamodb()
    text = report(sqlite_rows, dynamo_rows, args.ops, args.batches)
    print(text)
    if not args.no_write:
        write_section(SECTION, text, DOC)
        print(f"(recorded in {DOC.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
