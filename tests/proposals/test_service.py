"""The service stores a DRAFT with its ledger entries, or only a rejection record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.proposals.conftest import request_for
from tests.proposals.support import Scripted, Services, candidate

from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.proposal_log import (
    JsonlRejectionLog,
    MemoryRejectionLog,
    rejection_log_for,
)
from planpolicy import Actor, PolicyBundle
from planpolicy.proposal import ProposerError
from planpolicy.proposers.rules import RulesProposer


def test_a_draft_is_stored_with_its_audit_entry(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    s = Services(bundle, request)

    def no_second_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("the DRAFT and its audit entry must be one write")

    s.store.append_ledger = no_second_write  # type: ignore[method-assign]
    outcome = s.proposals.propose(request, RulesProposer())
    assert outcome.plan is not None and outcome.rejection is None
    [stored] = s.plans("northwind")
    assert stored.plan_id == outcome.plan.plan_id and stored.status == "DRAFT"
    assert stored.created_by == "proposer:rules" and stored.created_at == request.now
    ledger = s.store.ledger("northwind", stored.plan_id)
    assert [e.event for e in ledger] == [LedgerEvent.CREATED, LedgerEvent.PROPOSAL]
    entry = ledger[1]
    assert entry.actor == "proposer:rules"
    assert entry.reason == outcome.result.audit.rationale
    assert entry.bundle_digest == bundle.digest
    evidence = entry.evidence
    assert evidence["proposer"] == "rules" and evidence["model_id"] is None
    assert evidence["input_digest"] == request.digest
    assert str(evidence["output_digest"]).startswith("sha256:")
    assert evidence["bundle_digest"] == bundle.digest
    assert evidence["outcome"] == "drafted"
    assert isinstance(evidence["decision"], dict) and evidence["decision"]["can_activate"] is True
    assert isinstance(evidence["simulation"], dict)
    assert s.rejections.records("northwind") == []


def test_the_dry_run_summary(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    s = Services(bundle, request)
    simulation = s.proposals.propose(request, RulesProposer()).result.simulation
    assert simulation is not None
    assert simulation["activated"] is True and simulation["status"] == "ACTIVE"
    assert [
        (x["action_type"], x["status"], x["awaiting_approval"]) for x in simulation["steps"]
    ] == [
        ("PREP_RENEWAL_BRIEF", "SUCCEEDED", False),
        ("REQUEST_RENEWAL_MEETING", "SUCCEEDED", False),
        ("ESCALATE_SUPPORT_RISK", "PENDING", True),
    ]
    assert simulation["executions"] == 2
    assert simulation["events"]["approved"] == 1 and simulation["approval_refused"] is None
    # The dry run ran in its own store: the real one holds the DRAFT only.
    [stored] = s.plans("northwind")
    assert stored.status == "DRAFT" and stored.activated_at is None


def test_a_dry_run_that_cannot_activate_says_why(bundle: PolicyBundle) -> None:
    request = request_for("acme", now="2024-11-01T00:00:00Z")
    s = Services(bundle, request, horizon_days=2)
    result = s.proposals.evaluate(request, Scripted(candidate()))
    assert result.drafted and result.simulation is not None
    assert result.simulation["activated"] is False
    assert "eligibility" in str(result.simulation["activation_rejected"])


def test_a_rejection_stores_only_a_rejection_record(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    s = Services(bundle, request)
    outcome = s.proposals.propose(request, Scripted(candidate(status="APPROVED")))
    assert outcome.plan is None and outcome.rejection is not None
    assert s.plans("northwind") == []
    [record] = s.rejections.records("northwind")
    assert record == outcome.rejection
    assert record.event == LedgerEvent.PROPOSAL_REJECTED and record.seq == 1
    assert record.tenant_id == "northwind" and record.account_id == "acme"
    assert record.proposal_id == outcome.result.audit.proposal_id
    assert record.actor == "proposer:scripted" and "always DRAFT" in record.reason
    assert record.evidence["model_id"] == "m-1"
    assert record.evidence["outcome"] == "rejected"
    assert s.rejections.records("southwind") == []
    assert s.rejections.verify() == []


def test_a_failing_proposer_leaves_a_rejection_record(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    s = Services(bundle, request)
    outcome = s.proposals.propose(request, Scripted(ProposerError("timed out", retryable=True)))
    assert outcome.rejection is not None and s.plans("northwind") == []
    assert outcome.rejection.evidence["proposer_evidence"] == {"retryable": True}
    assert [r.code for r in outcome.result.reasons] == ["PROPOSER_FAILED"]


def test_an_active_plan_of_the_account_travels_as_a_conflict(bundle: PolicyBundle) -> None:
    request = request_for("acme")
    s = Services(bundle, request)
    first = s.proposals.propose(request, RulesProposer()).plan
    assert first is not None
    director = Actor("dana", frozenset({"revenue_director"}))
    s.service.approve("northwind", first.plan_id, director)
    assert s.service.activate("northwind", first.plan_id, director).activated
    second = s.proposals.propose(request, RulesProposer())
    assert second.plan is not None and second.plan.status == "DRAFT"
    decision = second.result.decision
    assert decision is not None and [r.code for r in decision.reasons] == ["CONFLICT_ACTIVE_PLAN"]


def _draft(reason: str = "no") -> LedgerDraft:
    return LedgerDraft(
        time="2025-03-01T09:00:00Z",  # type: ignore[arg-type]
        actor="proposer:rules",
        event=LedgerEvent.PROPOSAL_REJECTED,
        reason=reason,
    )


def test_the_jsonl_log_is_append_only_and_tamper_evident(tmp_path: Path) -> None:
    log = JsonlRejectionLog(tmp_path / "sub" / "rejections.jsonl")
    a = log.append(_draft("a"), tenant_id="northwind", account_id="acme", proposal_id="p1")
    b = log.append(_draft("b"), tenant_id="southwind", account_id="acme", proposal_id="p2")
    c = log.append(_draft("c"), tenant_id="northwind", account_id="globex", proposal_id="p3")
    assert (a.seq, b.seq, c.seq) == (1, 2, 3) and b.prev_hash == a.hash
    assert [r.proposal_id for r in log.records("northwind")] == ["p1", "p3"]
    assert JsonlRejectionLog(log.path).records("southwind") == [b]
    assert log.verify() == []
    lines = log.path.read_text().splitlines()
    edited = json.loads(lines[0]) | {"reason": "edited"}
    log.path.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    assert any("edited" in p for p in log.verify())
    log.path.write_text("\n".join(lines[1:]) + "\n")
    assert any("deleted" in p for p in log.verify())


def test_the_memory_log_chains_too() -> None:
    log = MemoryRejectionLog()
    first = log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p1")
    second = log.append(_draft(), tenant_id="t", account_id="a", proposal_id="p2")
    assert second.prev_hash == first.hash and log.verify() == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/plans.db", "data/plans.db.rejections.jsonl"),
        ("sqlite:////var/plans.db", "/var/plans.db.rejections.jsonl"),
    ],
)
def test_where_the_rejection_log_lives(
    url: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANPOLICY_REJECTION_LOG", raising=False)
    log = rejection_log_for(url)
    assert isinstance(log, JsonlRejectionLog) and str(log.path) == expected
    assert isinstance(rejection_log_for("memory://"), MemoryRejectionLog)
    assert isinstance(rejection_log_for(url, "x.jsonl"), JsonlRejectionLog)
    monkeypatch.setenv("PLANPOLICY_REJECTION_LOG", "/tmp/elsewhere.jsonl")
    log = rejection_log_for(url)
    assert isinstance(log, JsonlRejectionLog) and str(log.path) == "/tmp/elsewhere.jsonl"
