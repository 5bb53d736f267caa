"""Benchmark: the Plans API over HTTP on loopback, SQLite store.

Starts ``plan-orchestrator serve`` (one uvicorn worker, a fresh SQLite store,
``synchronous=full``) as its own process, seeds one tenant with ``--plans``
ACTIVE plans through the API, then drives it from this process with
``--clients`` threads, each with its own keep-alive connection
(``http.client``, the lightest client in the standard library):

- ``list``: ``GET /v1/plans?status=ACTIVE&limit=50`` (a page of 50 summaries);
- ``get``: ``GET /v1/plans/{id}`` (one plan, its risk and latest gate decision);
- ``mutation``: ``POST pause`` then ``POST resume`` with a reason, round-robin
  over the seeded plans, each thread on its own plans (no conflicts): a
  pause is one authority check and one version-checked write with its ledger
  entry; a resume also runs the policy gate.

Each scenario runs ``--seconds`` after a short warm-up; figures are requests
per second over the whole scenario, the p50/p99 of per-request latency, and
the server process's CPU time per request (from ``/proc``: the figure a busy
machine disturbs least). The load generator shares the machine's 2 cores
with the server.

    .venv/bin/python tools/bench/bench_api.py [--plans 64] [--clients 1,8] [--seconds 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from orchestrator.api.auth import mint_token  # noqa: E402

SECRET = "bench-secret-" + "b" * 40
TENANT = "bench"
STEPS = [
    {"action_type": "PREP_RENEWAL_BRIEF"},
    {"action_type": "REQUEST_RENEWAL_MEETING"},
    {"action_type": "ESCALATE_SUPPORT_RISK"},
]


def _headers(user: str, roles: list[str]) -> dict[str, str]:
    token = mint_token(SECRET, tenant_id=TENANT, user_id=user, roles=roles, ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


DIRECTOR = _headers("dir", ["revenue_director"])
PROPOSER = _headers("ae1", ["account_executive"])
MANAGER = _headers("mgr", ["revenue_manager"])


def start_server(workdir: Path, plans: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    accounts = workdir / "accounts"
    accounts.mkdir()
    renewal = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i in range(plans):
        (accounts / f"acct-{i}.yaml").write_text(
            f"account:\n  account_id: acct-{i}\n  renewal_date: {renewal}\n"
            "  renewal: {status: AT_RISK}\nsignals:\n  open_p1_tickets: 1\n"
        )
    log = workdir / "serve.log"
    command = [
        sys.executable, "-m", "orchestrator.main", "serve",
        "--store", f"sqlite:///{workdir / 'plans.db'}", "--init",
        "--port", "0", "--accounts", str(accounts), "--log-level", "warning",
        "--policies", str(REPO / "policies"), "--policies", str(REPO / "plan_types"),
    ]  # fmt: skip
    env = {**os.environ, "PLAN_API_JWT_SECRET": SECRET}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("serving the Plans API on "):
                address = line.split("http://", 1)[1].split("/", 1)[0]
                return proc, address, log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


class Connection:
    """One keep-alive connection to the server."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def seed(address: str, count: int) -> list[str]:
    """``count`` ACTIVE plans, one per account, through the API."""
    conn = Connection(address)
    ids = []
    for i in range(count):
        status, body = conn.call(
            "POST", "/v1/plans", PROPOSER,
            {"account_id": f"acct-{i}", "plan_type": "RENEWAL_DEFENSE", "steps": STEPS},
        )  # fmt: skip
        assert status == 201, body
        plan_id = json.loads(body)["plan_id"]
        for command in ("approve", "activate"):
            status, body = conn.call("POST", f"/v1/plans/{plan_id}/{command}", DIRECTOR, {})
            assert status == 200, body
        ids.append(plan_id)
    conn.close()
    return ids


Operation = Callable[[Connection, int], int]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    address: str,
    operation: Operation,
    clients: int,
    seconds: float,
    warmup: float,
    server_pid: int,
) -> dict[str, float]:
    """Drive ``operation`` from ``clients`` threads; requests/s, latency percentiles (ms)
    and the server's CPU time per request (ms), which a busy machine disturbs least."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()
    measuring = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        conn = Connection(address)
        barrier.wait()
        n = 0
        while not stop.is_set():
            start = time.perf_counter()
            status = operation(conn, index * 1_000_003 + n)
            elapsed = time.perf_counter() - start
            n += 1
            if measuring.is_set():
                latencies[index].append(elapsed)
                if status >= 400:
                    errors[index] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    time.sleep(warmup)
    cpu_before = cpu_seconds(server_pid)
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(server_pid) - cpu_before
    stop.set()
    for thread in threads:
        thread.join()
    samples = sorted(x for per in latencies for x in per)
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "requests": len(samples),
        "rps": len(samples) / elapsed,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "cpu_ms": cpu * 1000 / max(1, len(samples)),
        "errors": sum(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=64, help="ACTIVE plans to seed")
    parser.add_argument("--clients", default="1,8", help="comma-separated client thread counts")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        proc, address, _log = start_server(Path(tmp), args.plans)
        try:
            began = time.perf_counter()
            plans = seed(address, args.plans)
            seeding = time.perf_counter() - began
            per_worker = max(1, len(plans) // max(client_counts))

            def list_plans(conn: Connection, n: int) -> int:
                return conn.call("GET", "/v1/plans?status=ACTIVE&limit=50", MANAGER)[0]

            def get_plan(conn: Connection, n: int) -> int:
                return conn.call("GET", f"/v1/plans/{plans[n % len(plans)]}", MANAGER)[0]

            def mutate(conn: Connection, n: int) -> int:
                # each thread owns a slice of the plans: pause, then resume, round robin
                worker, k = divmod(n, 1_000_003)
                plan = plans[(worker * per_worker + (k // 2) % per_worker) % len(plans)]
                trigger = "pause" if k % 2 == 0 else "resume"
                return conn.call(
                    "POST", f"/v1/plans/{plan}/{trigger}", MANAGER, {"reason": f"bench {k}"}
                )[0]

            rows = []
            for name, operation in (("list", list_plans), ("get", get_plan), ("mutation", mutate)):
                for clients in client_counts:
                    figures = run(address, operation, clients, args.seconds, args.warmup, proc.pid)
                    rows.append((name, clients, figures))
                    print(
                        f"{name:9s} clients={clients:2d}  {figures['rps']:8.1f} req/s  "
                        f"p50 {figures['p50']:7.2f} ms  p99 {figures['p99']:7.2f} ms  "
                        f"server CPU {figures['cpu_ms']:5.2f} ms/req  "
                        f"({figures['requests']} requests, {figures['errors']} errors)",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    load = os.getloadavg()[0]
    print()
    print(
        f"`tools/bench/bench_api.py --plans {args.plans} --clients {args.clients} "
        f"--seconds {args.seconds:g}`; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end, "
        f"{datetime.now(UTC):%Y-%m-%d}. Seeding {args.plans} ACTIVE plans through the API "
        f"took {seeding:.1f} s."
    )
    print()
    print("| scenario | clients | requests/s | p50 ms | p99 ms | server CPU ms/request | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, clients, f in rows:
        print(
            f"| {name} | {clients} | {f['rps']:,.0f} | {f['p50']:.1f} | {f['p99']:.1f} | "
            f"{f['cpu_ms']:.2f} | {f['errors']} |"
        )
    errors = sum(int(f["errors"]) for _, _, f in rows)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
