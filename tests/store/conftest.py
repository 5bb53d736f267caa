"""Store fixtures: one ``store`` fixture parametrized over every adapter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.adapters.memory import MemoryStore
from orchestrator.adapters.sqlite import SqliteStore
from orchestrator.ports import ManagedStore

BACKENDS = ("memory", "sqlite", "dynamodb")


def unique_prefix() -> str:
    """A table prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the adapter under test."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for a fresh, empty store of ``backend``."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'plans.db'}"
    request.getfixturevalue("dynamodb_endpoint")
    return f"dynamodb://{unique_prefix()}?region=us-east-1"


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ManagedStore]:
    """A fresh, initialised store of every adapter in turn."""
    opened: ManagedStore
    if backend == "memory":
        opened = MemoryStore()
    elif backend == "sqlite":
        opened = SqliteStore(tmp_path / "plans.db")
    else:
        request.getfixturevalue("dynamodb_endpoint")
        opened = DynamoDBStore(unique_prefix(), region="us-east-1")
    opened.init()
    try:
        yield opened
    finally:
        opened.close()
