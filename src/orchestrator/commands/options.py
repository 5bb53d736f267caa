"""Options several verbs share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.ports import ManagedStore
from orchestrator.stores import DEFAULT_STORE_URL, STORE_URL_ENV, open_store

__all__ = ["add_store_option", "opened_store"]


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store URL``, defaulting to ``$PLANSTORE_URL`` or the local SQLite file."""
    parser.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get(STORE_URL_ENV, DEFAULT_STORE_URL),
        help=(
            "plan store URL: sqlite:///path.db or dynamodb://PREFIX?region=R "
            f"(default: ${STORE_URL_ENV} or {DEFAULT_STORE_URL})"
        ),
    )


@contextmanager
def opened_store(url: str) -> Iterator[ManagedStore]:
    """The store at ``url``, closed on exit."""
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()
