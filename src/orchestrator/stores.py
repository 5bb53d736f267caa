"""Choose a plan store by URL: the one place adapters are wired.

=======================================  ===========================================
URL                                      store
=======================================  ===========================================
``sqlite:///relative/plans.db``          SQLite file, relative to the working directory
``sqlite:////absolute/plans.db``         SQLite file, absolute path
``dynamodb://PREFIX?region=eu-west-1``   tables ``PREFIX`` + ``revenue-plans`` / ``plan-ledger``
``memory://``                            in-process, for tests and simulation
=======================================  ===========================================

SQLite options: ``?synchronous=full|normal`` (default ``full``) and
``?busy_timeout_ms=N`` (default 10000). The DynamoDB endpoint comes from the
standard ``AWS_ENDPOINT_URL_DYNAMODB`` variable, which boto3 reads by itself.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from orchestrator.errors import InvalidStoreUrl
from orchestrator.ports import ManagedStore

__all__ = ["DEFAULT_STORE_URL", "STORE_URL_ENV", "dynamodb_target", "open_store"]

DEFAULT_STORE_URL: Final = "sqlite:///./planstore.db"
STORE_URL_ENV: Final = "PLANSTORE_URL"
"""Environment variable the CLI reads when ``--store`` is not given."""

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,200}$")


def _options(query: str, allowed: set[str], url: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidStoreUrl(f"store URL `{url}`: malformed query string") from exc
    unknown = sorted(set(parsed) - allowed)
    if unknown:
        raise InvalidStoreUrl(
            f"store URL `{url}`: unknown option `{unknown[0]}` "
            f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
        )
    return {key: values[-1] for key, values in parsed.items()}


def dynamodb_target(url: str) -> tuple[str, str | None]:
    """The table prefix and region (``None``: the environment's) of a ``dynamodb://`` URL.

    ``InvalidStoreUrl`` if the URL is not a valid DynamoDB store URL.
    """
    parts = urlsplit(url)
    prefix = unquote(parts.netloc)
    if (
        parts.scheme.lower() != "dynamodb"
        or parts.path not in ("", "/")
        or not _PREFIX.match(prefix)
    ):
        raise InvalidStoreUrl(
            f"store URL `{url}`: expected `dynamodb://TABLE_PREFIX?region=...` with a "
            "prefix of letters, digits, `_`, `-` and `.`"
        )
    options = _options(parts.query, {"region"}, url)
    return prefix, options.get("region") or None


def open_store(url: str = DEFAULT_STORE_URL) -> ManagedStore:
    """The store a URL names; ``InvalidStoreUrl`` if it names none.

    Adapters are imported on demand, so that a SQLite deployment never loads boto3.

    Opening connects lazily: a missing database or table shows up as
    ``StoreNotInitialized`` on first use (run ``init``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from orchestrator.adapters.sqlite import SqliteStore

        if parts.netloc:
            raise InvalidStoreUrl(
                f"store URL `{url}`: use `sqlite:///relative.db` or `sqlite:////absolute.db`"
            )
        path = unquote(parts.path)[1:]  # `sqlite:///x` is `x`; `sqlite:////x` is `/x`
        if not path:
            raise InvalidStoreUrl(f"store URL `{url}`: no database path")
        options = _options(parts.query, {"synchronous", "busy_timeout_ms"}, url)
        synchronous = options.get("synchronous", "full")
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise InvalidStoreUrl(f"store URL `{url}`: synchronous must be `full` or `normal`")
        try:
            busy = int(options.get("busy_timeout_ms", "10000"))
        except ValueError as exc:
            raise InvalidStoreUrl(f"store URL `{url}`: busy_timeout_ms must be an integer") from exc
        return SqliteStore(path, synchronous=synchronous, busy_timeout_ms=busy)
    if scheme == "dynamodb":
        from orchestrator.adapters.dynamodb import DynamoDBStore

        prefix, region = dynamodb_target(url)
        return DynamoDBStore(prefix, region=region)
    if scheme == "memory":
        from orchestrator.adapters.memory import MemoryStore

        return MemoryStore()
    raise InvalidStoreUrl(
        f"store URL `{url}`: unknown scheme `{parts.scheme}` (use sqlite, dynamodb or memory)"
    )
