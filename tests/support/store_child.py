"""A store client run as a separate process, for tests that kill it mid-way.

Usage::

    python store_child.py activate URL TENANT PLAN_ID
        one activation (status ACTIVE + guard + ledger entry); with
        PLANSTORE_TEST_PAUSE_IN_TXN set, SQLite pauses inside the transaction
    python store_child.py update-loop URL TENANT PLAN_ID
        version-checked updates with a ledger entry each, forever; prints
        ``ready`` after the first
    python store_child.py pause-before-send URL TENANT PLAN_ID
        like ``activate``, but the DynamoDB client announces ``sending`` and
        sleeps just before the transaction goes out (the test kills it there)
"""

from __future__ import annotations

import sys
import time
from typing import Any

from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.stores import open_store


def _note(event: LedgerEvent, at: Any) -> LedgerDraft:
    return LedgerDraft(time=at, actor="child", event=event, reason="written by a child process")


def main(argv: list[str]) -> int:
    """Run one scenario until done or killed."""
    verb, url, tenant, plan_id = argv
    store = open_store(url)
    plan = store.get_plan(tenant, plan_id)
    if verb == "pause-before-send":

        def pause(**kwargs: Any) -> None:
            print("sending", flush=True)
            time.sleep(60)

        client = store._client  # type: ignore[attr-defined]
        client.meta.events.register("before-send.dynamodb.TransactWriteItems", pause)
    if verb in ("activate", "pause-before-send"):
        store.update_plan(
            plan.model_copy(update={"status": "ACTIVE"}),
            expected_version=plan.version,
            entries=[_note(LedgerEvent.ACTIVATED, plan.updated_at)],
            activate_guard=True,
        )
        print("done", flush=True)
        return 0
    first = True
    while True:
        plan = store.update_plan(
            plan.model_copy(update={"objective": f"revision {plan.version + 1}"}),
            expected_version=plan.version,
            entries=[_note(LedgerEvent.UPDATED, plan.updated_at)],
        )
        if first:
            print("ready", flush=True)
            first = False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
