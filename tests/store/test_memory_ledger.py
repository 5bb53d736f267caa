"""The memory store chains ledger hashes when the ledger is read: the same chain as at the write."""

from __future__ import annotations

import pytest

from orchestrator.adapters.memory import MemoryStore
from orchestrator.ledger import LedgerEvent, LedgerHead, chain_entries, verify_chain
from support.plans import created, draft, make_plan


def test_entries_placed_then_read_chain_as_if_hashed_at_the_write() -> None:
    store = MemoryStore()
    plan = make_plan()
    stored = store.create_plan(plan, created(plan))
    drafts = [draft(LedgerEvent.NOTE, evidence={"n": n, "x": [1.5, None]}) for n in range(3)]
    stored = store.update_plan(stored, expected_version=1, entries=drafts[:2])
    appended = store.append_ledger(plan.tenant_id, plan.plan_id, drafts[2:])
    stored = store.update_plan(stored, expected_version=2, entries=[draft(LedgerEvent.UPDATED)])
    head, entries = store.ledger_snapshot(plan.tenant_id, plan.plan_id)
    assert verify_chain(entries, head=head) == []
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.plan_version for e in entries] == [1, 2, 2, 2, 3]
    assert appended == [entries[3]]
    # what chaining every write at once gives
    expected = chain_entries(
        plan.tenant_id, plan.plan_id, LedgerHead(), created(plan), plan_version=1
    )
    assert entries[0].hash == expected[0].hash
    assert store.ledger(plan.tenant_id, plan.plan_id) == entries


def test_an_entry_without_json_text_is_refused_at_the_write() -> None:
    store = MemoryStore()
    plan = make_plan()
    stored = store.create_plan(plan, created(plan))
    with pytest.raises(ValueError):
        store.update_plan(stored, expected_version=1, entries=[draft(evidence={"x": float("nan")})])
    assert store.get_plan(plan.tenant_id, plan.plan_id).version == 1
    assert len(store.ledger(plan.tenant_id, plan.plan_id)) == 1
