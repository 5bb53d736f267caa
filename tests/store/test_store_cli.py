"""`plan-orchestrator init` and `ledger show|verify`: outputs and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.ledger import LedgerEvent
from orchestrator.main import EXIT_STORE_ERROR, EXIT_USAGE, main
from orchestrator.stores import open_store
from support.plans import created, draft, make_plan


def _seeded(url: str) -> str:
    store = open_store(url)
    store.init()
    plan = make_plan(plan_id="plan-1")
    store.create_plan(plan, created(plan))
    store.update_plan(
        plan.model_copy(update={"status": "APPROVED"}),
        expected_version=1,
        entries=[
            draft(
                LedgerEvent.APPROVED,
                reason="risk accepted",
                actor="alice",
                step_id=plan.steps[0].step_id,
                attempt=1,
            )
        ],
    )
    store.close()
    return plan.plan_id


def test_init_creates_the_sqlite_schema_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'plans.db'}"
    (tmp_path / "new").mkdir()
    assert main(["init", "--store", url]) == 0
    assert main(["init", "--store", url]) == 0
    assert "initialised plan store" in capsys.readouterr().out
    assert main(["ledger", "verify", "--store", url]) == 0


def test_init_creates_dynamodb_tables_idempotently(dynamodb_endpoint: str) -> None:
    import boto3

    prefix = f"cli{uuid.uuid4().hex[:6]}-"
    url = f"dynamodb://{prefix}?region=us-east-1"
    assert main(["init", "--store", url]) == 0
    assert main(["init", "--store", url]) == 0
    client = boto3.client("dynamodb", region_name="us-east-1")
    try:
        names = client.list_tables()["TableNames"]
    finally:
        client.close()
    assert {f"{prefix}revenue-plans", f"{prefix}plan-ledger"} <= set(names)


def test_ledger_show_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    plan_id = _seeded(url)
    assert main(["ledger", "show", plan_id, "--store", url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "plan `plan-1` (tenant `acme`): 2 ledger entries"
    assert lines[1].split()[:4] == ["1", "2025-03-01T12:00:00Z", "created", "by"]
    assert "reason: proposed to defend the renewal" in out
    assert "policy: sha256:abab" in out
    assert "PlanType/RENEWAL_DEFENSE v3" in out
    assert 'evidence: {"arr": 120000.5, "signals": {"open_p1_tickets": 2}}' in out
    assert "approved" in lines[-3] or any("approved" in line for line in lines)
    assert "step: " in out
    assert "attempt 1" in out


def test_ledger_show_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    plan_id = _seeded(url)
    assert (
        main(["ledger", "show", plan_id, "--store", url, "--tenant", "acme", "--format", "json"])
        == 0
    )
    entries = json.loads(capsys.readouterr().out)
    assert [(e["seq"], e["event"]) for e in entries] == [(1, "created"), (2, "approved")]
    assert entries[1]["prev_hash"] == entries[0]["hash"]


def test_ledger_show_unknown_plan_or_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    plan_id = _seeded(url)
    assert main(["ledger", "show", "nope", "--store", url]) == EXIT_STORE_ERROR
    assert (
        main(["ledger", "show", plan_id, "--store", url, "--tenant", "globex"]) == EXIT_STORE_ERROR
    )
    err = capsys.readouterr().err
    assert "plan `nope` not found" in err
    assert "Traceback" not in err


def test_ledger_show_asks_for_the_tenant_when_an_id_is_shared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    store = open_store(url)
    store.init()
    for tenant in ("acme", "globex"):
        plan = make_plan(tenant, plan_id="same")
        store.create_plan(plan, created(plan))
    store.close()
    assert main(["ledger", "show", "same", "--store", url]) == EXIT_USAGE
    assert "pass --tenant" in capsys.readouterr().err
    assert main(["ledger", "show", "same", "--store", url, "--tenant", "globex"]) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bogus://x", "unknown scheme `bogus`"),
        ("sqlite://", "no database path"),
        ("sqlite:///x.db?journal=off", "unknown option `journal`"),
        ("dynamodb://bad prefix!", "expected `dynamodb://TABLE_PREFIX"),
    ],
)
def test_bad_store_urls_exit_2_without_traceback(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "verify", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("plan-orchestrator: error: ")
    assert message in err


def test_missing_sqlite_database_is_reported_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.db"
    assert main(["ledger", "verify", "--store", f"sqlite:///{path}"]) == EXIT_STORE_ERROR
    assert "does not exist: run `plan-orchestrator init`" in capsys.readouterr().err
    assert not path.exists()


def test_sqlite_file_without_schema_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    assert main(["ledger", "show", "x", "--store", f"sqlite:///{path}"]) == EXIT_STORE_ERROR
    assert "has no plan store schema" in capsys.readouterr().err


def test_missing_dynamodb_tables_are_reported(
    dynamodb_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "dynamodb://never-created-?region=us-east-1"
    assert main(["ledger", "verify", "--store", url]) == EXIT_STORE_ERROR
    err = capsys.readouterr().err
    assert "not found: run `plan-orchestrator init`" in err
    assert "Traceback" not in err


def test_console_entry_point_runs_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.main", "ledger", "verify", "--store", "nope://"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == EXIT_USAGE
    assert "unknown scheme" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_lists_the_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "init" in err
    assert "ledger" in err
