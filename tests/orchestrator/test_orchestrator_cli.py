"""``plan-orchestrator plan ...`` and ``tick``: operating plans by hand, exit codes, messages.

Each command is run in-process through ``orchestrator.main.main`` against a
SQLite store; errors must be one line on stderr with the documented status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.main import main
from support.world import POLICY_PATHS, T0

NOW = T0.isoformat()


class Cli:
    """Runs ``plan-orchestrator`` with a store, the test policies and an accounts directory."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.store = f"sqlite:///{tmp_path / 'plans.db'}"
        self.accounts = tmp_path / "accounts"
        self.accounts.mkdir()
        self.tmp_path = tmp_path
        self.capsys = capsys
        self.common = ["--store", self.store, "--accounts", str(self.accounts)]
        for path in POLICY_PATHS:
            self.common += ["--policies", path]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        common = ["--store", self.store] if argv[0] == "ledger" else self.common
        code = main([*argv, *common])
        out, err = self.capsys.readouterr()
        return code, out, err

    def account(self, name: str, **account: Any) -> None:
        facts = {
            "account": {"account_id": name, **account},
            "signals": {"open_p1_tickets": 1},
        }
        (self.accounts / f"{name}.yaml").write_text(yaml.safe_dump(facts), encoding="utf-8")

    def plan_file(self, name: str = "plan.yaml", **fields: Any) -> Path:
        data: dict[str, Any] = {
            "tenant_id": "acme-corp",
            "account_id": "acct-1",
            "plan_type": "FOLLOW_UP",
            "objective": "recap the QBR",
            "steps": [{"action_type": "SEND_RECAP"}, {"action_type": "LOG_FOLLOW_UP"}],
            **fields,
        }
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    runner = Cli(tmp_path, capsys)
    assert main(["init", "--store", runner.store]) == 0
    runner.account("acct-1", renewal={"status": "OPEN"})
    yield runner


def _created(cli: Cli, **fields: Any) -> str:
    code, out, err = cli(
        "plan", "create", "--file", str(cli.plan_file(**fields)), "--actor", "ae-1",
        "--roles", "account_executive", "--reason", "QBR follow-up", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    return str(json.loads(out)["plan_id"])


def test_a_plan_goes_from_file_to_completion(cli: Cli) -> None:
    plan_id = _created(cli)
    code, out, _ = cli("plan", "show", plan_id, "--tenant", "acme-corp")
    assert code == 0 and "DRAFT" in out and "SEND_RECAP" in out
    code, out, _ = cli(
        "plan", "approve", plan_id, "--tenant", "acme-corp", "--actor", "mgr-1",
        "--roles", "revenue_manager", "--reason", "fine",
    )  # fmt: skip
    assert code == 0 and "approve done" in out and "APPROVED" in out
    code, out, err = cli("tick", "--executor", "memory", "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["activated"] == 1 and summary["all_steps_done"] == 1
    code, out, _ = cli("plan", "list", "--tenant", "acme-corp", "--status", "COMPLETED")
    assert code == 0 and plan_id in out and "1 plans" in out
    code, out, _ = cli("ledger", "show", plan_id)
    assert "created" in out and "by ae-1" in out and "QBR follow-up" in out


def test_plan_file_defaults_come_from_the_actor_and_the_plan_type(cli: Cli) -> None:
    plan_id = _created(cli)
    _, out, _ = cli("plan", "show", plan_id, "--tenant", "acme-corp", "--format", "json")
    plan = json.loads(out)
    assert plan["owner"] == plan["created_by"] == "ae-1"
    assert plan["plan_type_version"] == 1
    from datetime import datetime

    created = datetime.fromisoformat(plan["created_at"])
    lifetime = datetime.fromisoformat(plan["expires_at"]) - created
    assert abs(lifetime - timedelta(days=30)) < timedelta(seconds=5)  # the type's maximum


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan_type": "NO_SUCH_TYPE"}, "unknown plan type `NO_SUCH_TYPE`"),
        ({"steps": []}, "`steps`"),
        ({"account_id": "bad id with spaces"}, "`account_id`"),
    ],
)
def test_a_bad_plan_file_is_a_usage_error(cli: Cli, fields: dict[str, Any], message: str) -> None:
    path = cli.plan_file(**fields)
    code, out, err = cli("plan", "create", "--file", str(path), "--actor", "ae-1")
    assert code == 2 and out == ""
    assert err.startswith("plan-orchestrator: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unreadable_plan_files_are_usage_errors(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [unclosed\n", encoding="utf-8")
    for path, message in ((broken, "syntax error"), (tmp_path / "missing.yaml", "cannot read")):
        code, _, err = cli("plan", "create", "--file", str(path), "--actor", "ae-1")
        assert code == 2 and message in err and "Traceback" not in err


def test_refusals_and_conflicts_have_their_own_exit_codes(cli: Cli) -> None:
    plan_id = _created(cli)
    # the proposer may not approve their own plan: refused by the authority guard
    code, _, err = cli(
        "plan", "approve", plan_id, "--tenant", "acme-corp", "--actor", "ae-1",
        "--roles", "revenue_manager",
    )  # fmt: skip
    assert code == 4 and "authority" in err and "may not approve" in err
    # a DRAFT cannot be paused: invalid transition
    code, _, err = cli(
        "plan", "pause", plan_id, "--tenant", "acme-corp", "--actor", "mgr-1",
        "--roles", "revenue_manager", "--reason", "hold",
    )  # fmt: skip
    assert code == 4 and "cannot `pause` a plan in state `DRAFT`" in err
    # a stale --expected-version: conflict
    code, _, err = cli(
        "plan", "approve", plan_id, "--tenant", "acme-corp", "--actor", "mgr-1",
        "--roles", "revenue_manager", "--expected-version", "7",
    )  # fmt: skip
    assert code == 5 and "version" in err
    # another tenant's plan does not exist
    code, _, err = cli("plan", "show", plan_id, "--tenant", "other-corp")
    assert code == 3 and "not found" in err
    for message in (err,):
        assert "Traceback" not in message


def test_activation_rejected_by_the_gate_exits_4_and_is_ledgered(cli: Cli) -> None:
    cli.account("acct-1", renewal={"status": "RENEWED"})  # not eligible
    plan_id = _created(cli)
    cli(
        "plan", "approve", plan_id, "--tenant", "acme-corp", "--actor", "mgr-1",
        "--roles", "revenue_manager",
    )  # fmt: skip
    code, _, err = cli(
        "plan", "activate", plan_id, "--tenant", "acme-corp", "--actor", "mgr-1",
        "--roles", "revenue_manager",
    )  # fmt: skip
    assert code == 4 and "rejected (it stays APPROVED)" in err and "renewal_open" in err
    _, out, _ = cli("ledger", "show", plan_id)
    assert "activation_rejected" in out


def test_pause_resume_abort_and_approve_step_by_hand(cli: Cli) -> None:
    plan_id = _created(cli)
    approve = ("--tenant", "acme-corp", "--actor", "mgr-1", "--roles", "revenue_manager")
    assert cli("plan", "approve", plan_id, *approve)[0] == 0
    code, out, _ = cli("plan", "activate", plan_id, *approve, "--reason", "go")
    assert code == 0 and "ACTIVE" in out
    assert cli("plan", "pause", plan_id, *approve, "--reason", "customer on holiday")[0] == 0
    assert cli("plan", "resume", plan_id, *approve, "--reason", "back")[0] == 0
    code, out, _ = cli("plan", "approve-step", plan_id, "--step", "SEND_RECAP", *approve)
    assert code == 0 and "approved by mgr-1" in out
    code, _, err = cli("plan", "approve-step", plan_id, "--step", "NOPE", *approve)
    assert code == 3 and "not found" in err
    code, _, err = cli(
        "plan", "abort", plan_id, "--tenant", "acme-corp", "--actor", "ae-2",
        "--roles", "account_executive", "--reason", "no",
    )  # fmt: skip
    assert code == 4 and "authority" in err
    code, out, _ = cli(
        "plan", "abort", plan_id, "--tenant", "acme-corp", "--actor", "dir-1",
        "--roles", "revenue_director", "--reason", "deal lost",
    )  # fmt: skip
    assert code == 0 and "ABORTED" in out
    _, out, _ = cli("ledger", "show", plan_id, "--format", "json")
    events = [(e["event"], e["actor"], e["reason"]) for e in json.loads(out)]
    assert ("paused", "mgr-1", "customer on holiday") in events
    assert ("resumed", "mgr-1", "back") in events
    assert events[-1] == ("aborted", "dir-1", "deal lost")


def test_tick_needs_an_executor_and_a_zoned_now(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANPOLICY_EXECUTOR_URL", raising=False)
    code, _, err = cli("tick", "--now", NOW)
    assert code == 2 and "no action executor" in err
    code, _, err = cli("tick", "--now", "2026-01-05T09:00", "--executor", "memory")
    assert code == 2 and "no time zone" in err
    code, _, err = cli("tick", "--now", "yesterday", "--executor", "memory")
    assert code == 2 and "not an ISO-8601 time" in err
    code, out, _ = cli("tick", "--now", NOW, "--executor", "memory")
    assert code == 0 and out.strip() == "tick at 2026-01-05T09:00:00Z: 0 due"


def test_a_store_that_was_never_initialised_is_a_store_error(tmp_path: Path, capsys: Any) -> None:
    code = main(["tick", "--store", f"sqlite:///{tmp_path / 'none.db'}", "--executor", "memory", "--now", NOW]
                + [arg for path in POLICY_PATHS for arg in ("--policies", path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3 and "plan-orchestrator init" in err


def test_a_broken_policy_bundle_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    code = main(
        [
            "plan",
            "list",
            "--tenant",
            "t",
            "--store",
            cli.store,
            "--policies",
            str(tmp_path / "nope"),
        ]
    )
    err = cli.capsys.readouterr().err
    assert code == 2 and "does not exist" in err
