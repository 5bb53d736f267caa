"""The Plans API test harness: start ``plan-orchestrator serve``, mint tokens, build plans.

The server is a real process on loopback (SQLite store in a temporary
directory, account facts written by the tests, the JWT secret passed through
the environment). :class:`ApiClient` acts as any (tenant, user, roles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from orchestrator.api.auth import mint_token

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "s" * 40

AE = ("account_executive",)
MANAGER = ("revenue_manager",)
DIRECTOR = ("revenue_director",)

ALL_STEPS = [
    {"action_type": "PREP_RENEWAL_BRIEF"},
    {"action_type": "REQUEST_RENEWAL_MEETING"},
    {"action_type": "ESCALATE_SUPPORT_RISK"},
]
"""A HIGH-risk plan (the escalation is HIGH): only a director may approve it."""
MEDIUM_STEPS = ALL_STEPS[:2]
"""A MEDIUM-risk plan: a manager may approve it."""


def write_accounts(directory: Path, now: datetime) -> None:
    """Account facts: ``acme``/``globex``/``initech`` eligible, ``renewed`` not (renewal won)."""
    directory.mkdir(parents=True, exist_ok=True)
    renewal = (now + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for account, status in [
        ("acme", "AT_RISK"),
        ("globex", "OPEN"),
        ("initech", "AT_RISK"),
        ("renewed", "RENEWED"),
    ]:
        (directory / f"{account}.yaml").write_text(
            f"account:\n  account_id: {account}\n  arr: 120000.0\n"
            f"  renewal_date: {renewal}\n  renewal:\n    status: {status}\n"
            "signals:\n  open_p1_tickets: 2\n",
            encoding="utf-8",
        )


@dataclass
class ServerProcess:
    """A running ``plan-orchestrator serve`` and where it listens."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    log_file: Any = field(repr=False)

    def stop(self) -> None:
        """SIGTERM (a graceful uvicorn shutdown), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_server(
    workdir: Path,
    *,
    store_url: str,
    accounts: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    init: bool = True,
    timeout: float = 30.0,
) -> ServerProcess:
    """Start the server on a free loopback port; return once ``/healthz`` answers."""
    log_path = workdir / f"serve-{uuid.uuid4().hex[:8]}.log"
    log_file = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "orchestrator.main",
        "serve",
        "--store",
        store_url,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--accounts",
        str(accounts),
        "--policies",
        str(REPO / "policies"),
        "--policies",
        str(REPO / "plan_types"),
        "--log-level",
        "warning",
        *(["--init"] if init else []),
        *extra_args,
    ]
    environment = {**os.environ, "PLAN_API_JWT_SECRET": SECRET, **(env or {})}
    proc = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir, env=environment
    )
    server = ServerProcess(proc, "", log_path, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{server.log()}")
        for line in server.log().splitlines():
            if line.startswith("serving the Plans API on "):
                server.base_url = line.split(" on ", 1)[1].split("/ ", 1)[0]
        if server.base_url:
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the server did not start in {timeout} s:\n{server.log()}")


def bearer(tenant: str, user: str, roles: Sequence[str] = (), **claims: Any) -> dict[str, str]:
    """An ``Authorization`` header for the caller."""
    token = mint_token(SECRET, tenant_id=tenant, user_id=user, roles=roles, extra=claims or None)
    return {"Authorization": f"Bearer {token}"}


class ApiClient:
    """An HTTP client of the test server, acting as any caller of one tenant by default."""

    def __init__(self, base_url: str, tenant: str) -> None:
        self.base_url = base_url
        self.tenant = tenant
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def headers(
        self, user: str, roles: Sequence[str] = (), tenant: str | None = None, **extra: str
    ) -> dict[str, str]:
        return {**bearer(tenant or self.tenant, user, roles), **extra}

    def get(
        self, path: str, user: str = "viewer", roles: Sequence[str] = (), **kw: Any
    ) -> httpx.Response:
        tenant = kw.pop("tenant", None)
        headers = {**self.headers(user, roles, tenant), **kw.pop("headers", {})}
        return self.http.get(path, headers=headers, **kw)

    def post(
        self,
        path: str,
        body: Any = None,
        user: str = "viewer",
        roles: Sequence[str] = (),
        **kw: Any,
    ) -> httpx.Response:
        tenant = kw.pop("tenant", None)
        headers = {
            **self.headers(user, roles, tenant),
            "Content-Type": "application/json",
            **kw.pop("headers", {}),
        }
        # json.dumps escapes every non-ASCII character, so lone surrogates reach the server.
        content = json.dumps({} if body is None else body).encode("ascii")
        return self.http.post(path, content=content, headers=headers, **kw)

    # --- building plans through the API -----------------------------------------

    def create(
        self,
        account: str = "acme",
        steps: Sequence[Mapping[str, Any]] = ALL_STEPS,
        *,
        owner_user: str = "ae1",
        **fields: Any,
    ) -> dict[str, Any]:
        body = {"account_id": account, "plan_type": "RENEWAL_DEFENSE", "steps": list(steps)}
        body.update(fields)
        response = self.post("/v1/plans", body, owner_user, AE)
        assert response.status_code == 201, response.text
        plan: dict[str, Any] = response.json()
        return plan

    def approved(
        self, account: str = "acme", steps: Sequence[Mapping[str, Any]] = ALL_STEPS
    ) -> dict[str, Any]:
        plan = self.create(account, steps)
        response = self.post(
            f"/v1/plans/{plan['plan_id']}/approve", {"reason": "ok"}, "dir", DIRECTOR
        )
        assert response.status_code == 200, response.text
        approved: dict[str, Any] = response.json()
        return approved

    def active(
        self, account: str = "acme", steps: Sequence[Mapping[str, Any]] = ALL_STEPS
    ) -> dict[str, Any]:
        plan = self.approved(account, steps)
        response = self.post(f"/v1/plans/{plan['plan_id']}/activate", {}, "dir", DIRECTOR)
        assert response.status_code == 200, response.text
        active: dict[str, Any] = response.json()
        assert active["status"] == "ACTIVE"
        return active


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["retryable"], bool)
    assert body["instance"] == response.request.url.path
    return body
