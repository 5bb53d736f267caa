"""Fixtures of the Plans API tests: one real server per session, a fresh tenant per test.

``api_server`` starts ``plan-orchestrator serve`` on a SQLite store; every test
works in a tenant of its own (``tenant``), so tests never see each other's plans.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.api.harness import ApiClient, ServerProcess, start_server, write_accounts


@pytest.fixture(scope="session")
def api_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session directory with the account facts."""
    workdir = tmp_path_factory.mktemp("api")
    write_accounts(workdir / "accounts", datetime.now(UTC))
    return workdir


@pytest.fixture(scope="session")
def api_server(api_workdir: Path) -> Iterator[ServerProcess]:
    """One real server for the session, on a SQLite store."""
    server = start_server(
        api_workdir,
        store_url=f"sqlite:///{api_workdir / 'plans.db'}",
        accounts=api_workdir / "accounts",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tenant() -> str:
    """A fresh tenant id: the test's plans are the only ones it sees."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(api_server: ServerProcess, tenant: str) -> Iterator[ApiClient]:
    """A client of the session server, in the test's own tenant."""
    client = ApiClient(api_server.base_url, tenant)
    try:
        yield client
    finally:
        client.close()
