"""open_store: which URL opens which adapter, and which URLs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.adapters.dynamodb import DynamoDBStore
from orchestrator.adapters.memory import MemoryStore
from orchestrator.adapters.sqlite import SqliteStore
from orchestrator.errors import InvalidStoreUrl
from orchestrator.stores import DEFAULT_STORE_URL, open_store


def test_sqlite_paths_relative_and_absolute(tmp_path: Path) -> None:
    relative = open_store("sqlite:///./data/plans.db")
    absolute = open_store(f"sqlite:///{tmp_path}/plans.db")
    assert isinstance(relative, SqliteStore)
    assert isinstance(absolute, SqliteStore)
    assert relative.path == Path("./data/plans.db")
    assert absolute.path == tmp_path / "plans.db"
    assert DEFAULT_STORE_URL == "sqlite:///./planstore.db"
    spaced = open_store(f"sqlite:///{tmp_path}/a%20b.db")
    assert isinstance(spaced, SqliteStore)
    assert spaced.path == tmp_path / "a b.db"


def test_sqlite_options(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/p.db?synchronous=normal&busy_timeout_ms=250")
    assert isinstance(store, SqliteStore)
    store.init()
    try:
        assert store._synchronous == "NORMAL"
        assert store._busy_timeout_ms == 250
    finally:
        store.close()


def test_dynamodb_url_names_the_table_prefix() -> None:
    store = open_store("dynamodb://Prod_Plans-?region=eu-west-1")
    assert isinstance(store, DynamoDBStore)
    try:
        assert store.plans_table == "Prod_Plans-revenue-plans"
        assert store.ledger_table == "Prod_Plans-plan-ledger"
        assert store._client.meta.region_name == "eu-west-1"
    finally:
        store.close()


def test_memory_url() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://db/plans",
        "sqlite://host/plans.db",
        "sqlite:///",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x.db?busy_timeout_ms=soon",
        "sqlite:///x.db?cache=shared",
        "dynamodb://pre/fix?region=x",
        "dynamodb://pre fix",
        "dynamodb://prefix?endpoint=http://localhost",
        "plans.db",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidStoreUrl):
        open_store(url)
