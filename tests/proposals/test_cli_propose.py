"""`planpolicy propose`: the example accounts, both formats, storing, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from tests.engine.conftest import REPO
from tests.proposals.support import candidate

from orchestrator.ledger import LedgerEvent
from orchestrator.proposal_log import JsonlRejectionLog
from orchestrator.stores import open_store
from planpolicy.cli import main
from planpolicy.proposers.bedrock import TOOL_NAME, BedrockProposer

Run = tuple[int, str, str]
Cli = Callable[..., Run]
ACCOUNTS = "examples/accounts"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("PLANPOLICY_REJECTION_LOG", raising=False)

    def run(*argv: str) -> Run:
        code = main(["propose", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_text_output_for_an_at_risk_account(cli: Cli) -> None:
    code, out, err = cli("--account", f"{ACCOUNTS}/acme.yaml")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("proposal `") and lines[0].endswith(
        "by `rules`: DRAFT for account `acme` (tenant `northwind`)"
    )
    assert "RENEWAL_DEFENSE v1, owner `alice`, expires 2025-05-30T09:00:00+00:00" in lines[1]
    assert "  objective: Renew Acme Corp before 2025-05-15." in lines
    assert "    ESCALATE_SUPPORT_RISK      HIGH    human touch" in lines
    assert "  gate, once approved: can activate" in lines
    assert "    ESCALATE_SUPPORT_RISK      waits for a person's approval" in lines
    assert "  approval: a person must approve this DRAFT; nothing runs until then" in lines
    assert lines[-1] == "  not stored (pass `--store URL` to store it)"


def test_json_output(cli: Cli) -> None:
    code, out, _ = cli("--account", f"{ACCOUNTS}/globex.yaml", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["outcome"] == "drafted" and data["stored"] is None
    assert data["plan"]["status"] == "DRAFT"
    assert [s["action_type"] for s in data["plan"]["steps"]] == [
        "PREP_RENEWAL_BRIEF",
        "REQUEST_RENEWAL_MEETING",
    ]
    assert data["proposal"]["proposer"] == "rules"
    assert data["decision"]["can_activate"] is True
    assert data["simulation"]["activated"] is True


def test_nothing_to_propose_exits_3(cli: Cli) -> None:
    code, out, _ = cli("--account", f"{ACCOUNTS}/initech.yaml")
    assert code == 3
    assert "rejected for account `initech` (no plan proposed)" in out
    assert "PROPOSAL_CONDITION_FALSE: `RENEWAL_DEFENSE`: proposal rule `health_below_60`" in out


def test_owner_and_time_can_be_given(cli: Cli) -> None:
    code, out, _ = cli(
        "--account",
        f"{ACCOUNTS}/acme.yaml",
        "--owner",
        "zoe",
        "--now",
        "2025-04-01T00:00:00Z",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert code == 0 and data["plan"]["owner"] == "zoe"
    assert data["plan"]["created_at"] == "2025-04-01T00:00:00Z"


def test_an_unusable_account_file_is_a_located_usage_error(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant_id: northwind\naccount:\n  name: nobody\nsignals: []\n")
    code, out, err = cli("--account", str(bad), "--now", "2025-03-01T00:00:00Z")
    assert code == 2 and out == ""
    assert f"{bad}:3:3: error: account: `account.account_id` must be an identifier" in err
    assert f"{bad}:4:10: error: account: `signals` must be a mapping" in err
    assert "cannot use the account file" in err.splitlines()[-1]
    assert cli("--account", str(tmp_path / "missing.yaml"))[0] == 2
    assert cli("--account", str(bad), "--now", "tomorrow")[0] == 2


def test_store_keeps_the_draft_and_its_ledger(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/plans.db"
    store = open_store(url)
    store.init()
    code, out, _ = cli("--account", f"{ACCOUNTS}/acme.yaml", "--store", url, "--format", "json")
    assert code == 0
    data = json.loads(out)
    plan_id = data["stored"]["plan_id"]
    stored = store.get_plan("northwind", plan_id)
    assert stored.status == "DRAFT" and stored.created_by == "proposer:rules"
    assert [e.event for e in store.ledger("northwind", plan_id)] == [
        LedgerEvent.CREATED,
        LedgerEvent.PROPOSAL,
    ]
    code, out, _ = cli("--account", f"{ACCOUNTS}/initech.yaml", "--store", url)
    assert code == 3
    assert f"rejection record #1 written to `{tmp_path}/plans.db.rejections.jsonl`" in out
    [record] = JsonlRejectionLog(f"{tmp_path}/plans.db.rejections.jsonl").records("northwind")
    assert record.account_id == "initech" and record.event == LedgerEvent.PROPOSAL_REJECTED
    assert [p.account_id for p in store.list_plans("northwind").items] == ["acme"]
    store.close()


def test_store_problems_are_reported(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("--account", f"{ACCOUNTS}/acme.yaml", "--store", "ftp://x")
    assert code == 2 and "unknown scheme" in err
    code, _, err = cli(
        "--account", f"{ACCOUNTS}/acme.yaml", "--store", f"sqlite:///{tmp_path}/none.db"
    )
    assert code == 1 and err.startswith("planpolicy propose: error:")


def test_bedrock_from_the_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(client)
    answer: dict[str, Any] = {
        "toolUse": {"toolUseId": "t", "name": TOOL_NAME, "input": candidate()}
    }
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [answer]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1},
        },
    )
    monkeypatch.setattr(BedrockProposer, "client", lambda self: client)
    with stubber:
        code, out, _ = cli(
            "--account",
            f"{ACCOUNTS}/umbrella.yaml",
            "--proposer",
            "bedrock",
            "--model-id",
            "my-model",
            "--region",
            "eu-west-1",
        )
    assert code == 0
    assert "by `bedrock`, model `my-model`: DRAFT for account `umbrella`" in out
