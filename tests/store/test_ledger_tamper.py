"""Tampering with the SQLite ledger directly is caught by `plan-orchestrator ledger verify`.

The ledger table refuses UPDATE and DELETE through triggers; a tamperer with
write access to the file can drop them, so each case below drops them first
and then edits, deletes or reorders rows behind the store's back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.adapters.sqlite import SqliteStore
from orchestrator.ledger import LedgerEntry, LedgerEvent
from orchestrator.main import main
from support.plans import created, draft, make_plan

Tamper = Callable[[sqlite3.Connection, str], None]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A database with two plans; the first has four ledger entries."""
    path = tmp_path / "plans.db"
    store = SqliteStore(path)
    store.init()
    victim = make_plan(plan_id="victim")
    other = make_plan(plan_id="bystander")
    for plan in (victim, other):
        store.create_plan(plan, created(plan))
    updated = store.update_plan(
        victim.model_copy(update={"status": "APPROVED"}),
        expected_version=1,
        entries=[draft(LedgerEvent.APPROVED, reason="approved by the owner")],
    )
    store.update_plan(
        updated, expected_version=2, entries=[draft(LedgerEvent.NOTE, reason="checked")]
    )
    store.append_ledger("acme", "victim", [draft(LedgerEvent.NOTE, reason="last word")])
    store.close()
    yield path, f"sqlite:///{path}", "victim"


def _entry(conn: sqlite3.Connection, seq: int) -> dict[str, object]:
    row = conn.execute("SELECT entry FROM ledger WHERE plan_id = 'victim' AND seq = ?", (seq,))
    data: dict[str, object] = json.loads(row.fetchone()[0])
    return data


def _put(conn: sqlite3.Connection, seq: int, data: dict[str, object]) -> None:
    conn.execute(
        "UPDATE ledger SET entry = ? WHERE plan_id = 'victim' AND seq = ?", (json.dumps(data), seq)
    )


def edit_reason(conn: sqlite3.Connection, plan_id: str) -> None:
    data = _entry(conn, 2)
    data["reason"] = "approved by nobody in particular"
    _put(conn, 2, data)


def edit_and_rehash(conn: sqlite3.Connection, plan_id: str) -> None:
    entry = LedgerEntry.model_validate(_entry(conn, 2))
    forged = entry.model_copy(update={"actor": "mallory"})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    _put(conn, 2, forged.model_dump(mode="json"))


def delete_middle(conn: sqlite3.Connection, plan_id: str) -> None:
    conn.execute("DELETE FROM ledger WHERE plan_id = 'victim' AND seq = 2")


def delete_newest(conn: sqlite3.Connection, plan_id: str) -> None:
    conn.execute("DELETE FROM ledger WHERE plan_id = 'victim' AND seq = 4")


def reorder(conn: sqlite3.Connection, plan_id: str) -> None:
    two, three = _entry(conn, 2), _entry(conn, 3)
    _put(conn, 2, three)
    _put(conn, 3, two)


def renumber(conn: sqlite3.Connection, plan_id: str) -> None:
    # swap the rows' keys instead of their content
    conn.execute("UPDATE ledger SET seq = -1 WHERE plan_id = 'victim' AND seq = 2")
    conn.execute("UPDATE ledger SET seq = 2 WHERE plan_id = 'victim' AND seq = 3")
    conn.execute("UPDATE ledger SET seq = 3 WHERE plan_id = 'victim' AND seq = -1")


def forge_newest(conn: sqlite3.Connection, plan_id: str) -> None:
    # rewrite the newest entry with a valid hash of its own; the plan's head still
    # records the original
    entry = LedgerEntry.model_validate(_entry(conn, 4)).model_copy(update={"reason": "nothing"})
    _put(conn, 4, entry.model_copy(update={"hash": entry.computed_hash()}).model_dump(mode="json"))


def corrupt_json(conn: sqlite3.Connection, plan_id: str) -> None:
    conn.execute("UPDATE ledger SET entry = '{not json' WHERE plan_id = 'victim' AND seq = 3")


CASES: dict[str, tuple[Tamper, int | None, str]] = {
    "edited": (edit_reason, 2, "the entry was edited"),
    "edited and re-hashed": (edit_and_rehash, 3, "prev_hash does not match"),
    "deleted": (delete_middle, 2, "it was deleted"),
    "newest deleted": (delete_newest, 4, "it was deleted"),
    "reordered": (reorder, 3, "reordered"),
    "renumbered": (renumber, 3, "reordered"),
    "newest forged": (forge_newest, 4, "differs from the ledger head"),
    "unreadable": (corrupt_json, None, "seq 3"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_names_the_tampered_plan_and_seq(
    case: str, db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, url, plan_id = db
    tamper, seq, message = CASES[case]
    assert main(["ledger", "verify", "--store", url]) == 0
    capsys.readouterr()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER ledger_no_update")
        conn.execute("DROP TRIGGER ledger_no_delete")
        tamper(conn, plan_id)
    conn.close()

    assert main(["ledger", "verify", "--store", url]) == 1
    out = capsys.readouterr().out
    problem_lines = [line for line in out.splitlines() if line.startswith("plan `")]
    assert problem_lines, out
    assert all("plan `victim`" in line for line in problem_lines), out
    located = f"plan `victim` (tenant `acme`) seq {seq}:" if seq else "plan `victim`"
    assert any(line.startswith(located) and message in line for line in problem_lines), out
    assert "ledger verify FAILED: 2 plans" in out
    # one plan only
    assert main(["ledger", "verify", "--store", url, "--plan", "bystander"]) == 0
    assert main(["ledger", "verify", "--store", url, "--plan", "victim"]) == 1


def test_the_ledger_table_refuses_update_and_delete(db: tuple[Path, str, str]) -> None:
    path, _, _ = db
    with sqlite3.connect(path) as conn:
        for statement in (
            "UPDATE ledger SET entry = '{}' WHERE seq = 1",
            "DELETE FROM ledger WHERE seq = 1",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    conn.close()


def test_verify_json_lists_problems(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, url, _ = db
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER ledger_no_delete")
        delete_middle(conn, "victim")
    conn.close()
    assert main(["ledger", "verify", "--store", url, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["plans"] == 2
    assert {"tenant_id": "acme", "plan_id": "victim", "seq": 2}.items() <= report["problems"][
        0
    ].items()


def test_a_consistent_rewrite_of_the_tail_needs_an_external_anchor(
    db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The limit of a hash chain kept in the same database (see docs/store.md).

    Someone who can write the file can drop the newest entries and move the
    plan's recorded head back; what remains is a valid chain. Comparing heads
    with a copy kept elsewhere (``ledger verify --format json`` prints them)
    catches it.
    """
    path, url, _ = db
    assert main(["ledger", "verify", "--store", url, "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)["heads"]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER ledger_no_delete")
        third = _entry(conn, 3)
        conn.execute("DELETE FROM ledger WHERE plan_id = 'victim' AND seq = 4")
        conn.execute(
            "UPDATE plans SET ledger_seq = 3, ledger_hash = ? WHERE plan_id = 'victim'",
            (third["hash"],),
        )
    conn.close()
    assert main(["ledger", "verify", "--store", url, "--format", "json"]) == 0
    after = json.loads(capsys.readouterr().out)["heads"]
    assert before != after
    assert after["acme/victim"]["seq"] == 3


def test_canonical_hash_is_pinned() -> None:
    """The hash format is part of the stored data: changing it breaks every ledger."""
    entry = LedgerEntry.model_validate(
        {
            "time": "2025-03-01T12:00:00Z",
            "actor": "tester",
            "event": "note",
            "tenant_id": "acme",
            "plan_id": "p1",
            "seq": 1,
            "plan_version": 1,
            "prev_hash": "0" * 64,
            "hash": "0" * 64,
        }
    )
    canonical = (
        '{"actor":"tester","event":"note","plan_id":"p1","plan_version":1,'
        '"prev_hash":"' + "0" * 64 + '","seq":1,"tenant_id":"acme",'
        '"time":"2025-03-01T12:00:00Z"}'
    )
    assert entry.computed_hash() == hashlib.sha256(canonical.encode()).hexdigest()
