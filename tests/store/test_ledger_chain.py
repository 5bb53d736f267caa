"""verify_chain on its own: what it catches, and that it catches any single change."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.ledger import (
    GENESIS_HASH,
    LedgerEntry,
    LedgerEvent,
    LedgerHead,
    chain_entries,
    entry_hash,
    rechained,
    verify_chain,
)
from support.plans import T0, draft


def _ledger(n: int = 5) -> list[LedgerEntry]:
    drafts = [
        draft(LedgerEvent.NOTE, reason=f"entry {i}", at=T0 + timedelta(minutes=i)) for i in range(n)
    ]
    return chain_entries("acme", "p1", LedgerHead(), drafts, plan_version=1)


def _head(entries: list[LedgerEntry]) -> LedgerHead:
    return LedgerHead(entries[-1].seq, entries[-1].hash)


def test_chain_links_each_entry_to_the_one_before() -> None:
    entries = _ledger()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert verify_chain(entries, head=_head(entries)) == []
    assert verify_chain([]) == []


def test_chaining_continues_from_a_head() -> None:
    first = _ledger(2)
    more = chain_entries("acme", "p1", _head(first), [draft()], plan_version=2)
    assert (more[0].seq, more[0].prev_hash) == (3, first[-1].hash)
    assert verify_chain(first + more) == []


def test_entry_times_are_stored_in_utc() -> None:
    from datetime import timezone

    local = T0.astimezone(timezone(timedelta(hours=5)))
    [entry] = chain_entries("acme", "p1", LedgerHead(), [draft(at=local)], plan_version=1)
    assert entry.time.utcoffset() == timedelta(0)
    assert entry.time == T0


def test_edit_is_located() -> None:
    entries = _ledger()
    entries[2] = entries[2].model_copy(update={"reason": "changed"})
    [problem] = verify_chain(entries, head=_head(entries))
    assert (problem.plan_id, problem.seq) == ("p1", 3)
    assert "edited" in problem.message
    assert str(problem).startswith("plan `p1` (tenant `acme`) seq 3: ")


def test_deletions_and_reordering_are_located() -> None:
    entries = _ledger()
    head = _head(entries)
    assert next(p.seq for p in verify_chain(entries[:2] + entries[3:], head=head)) == 3
    assert any("deleted" in p.message and p.seq == 5 for p in verify_chain(entries[:4], head=head))
    swapped = [entries[0], entries[2], entries[1], entries[3], entries[4]]
    assert any("reordered" in p.message for p in verify_chain(swapped, head=head))


def test_entries_of_another_plan_are_reported() -> None:
    entries = _ledger(2)
    stranger = chain_entries("acme", "p2", _head(entries), [draft()], plan_version=1)
    problems = verify_chain(entries + stranger)
    assert any("belongs to plan `p2`" in p.message for p in problems)


def test_too_many_drafts_per_write_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 25"):
        chain_entries("acme", "p1", LedgerHead(), [draft()] * 26, plan_version=1)


_FIELDS = {
    "reason": st.text(max_size=20),
    "actor": st.text(min_size=1, max_size=10),
    "event": st.sampled_from(list(LedgerEvent)),
    "evidence": st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    "time": st.datetimes(timezones=st.just(T0.tzinfo)).filter(lambda t: t.year > 1900),
    "plan_version": st.integers(min_value=1, max_value=99),
    "bundle_digest": st.none() | st.text(min_size=1, max_size=10),
}


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=4),
    field_and_value=st.sampled_from(list(_FIELDS)).flatmap(
        lambda name: st.tuples(st.just(name), _FIELDS[name])
    ),
)
def test_any_single_field_change_is_detected(
    index: int, field_and_value: tuple[str, object]
) -> None:
    entries = _ledger()
    name, value = field_and_value
    changed = LedgerEntry.model_validate(
        {**entries[index].model_dump(), name: value}
    )  # validated, so the value has its stored type
    if changed == entries[index]:
        return  # drew the value it already had
    tampered = [*entries[:index], changed, *entries[index + 1 :]]
    problems = verify_chain(tampered, head=_head(entries))
    assert problems
    assert {p.seq for p in problems} == {index + 1}


def test_rechained_is_a_copy_with_the_hash_its_new_placement_gives() -> None:
    drafts = [
        draft(LedgerEvent.NOTE),  # every defaulted field at its default
        draft(
            LedgerEvent.STEP_OUTCOME,
            reason="ok",
            bundle_digest="sha256:" + "ab" * 32,
            document_versions={"PlanType/X": 2},
            attempt=2,
            evidence={"nested": {"list": [1, "two", None, 1.5]}, "flag": False},
        ),
    ]
    prev = GENESIS_HASH
    for entry in chain_entries("acme", "p1", LedgerHead(), drafts, plan_version=3):
        moved = rechained(entry, plan_version=7, prev_hash=prev)
        expected = entry.model_copy(update={"plan_version": 7, "prev_hash": prev})
        expected = expected.model_copy(update={"hash": entry_hash(expected)})
        assert moved == expected
        assert moved.computed_hash() == moved.hash
        prev = moved.hash
