"""The three report formats, failing expectations, --out and the progress bar."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from planpolicy import PolicyBundle
from planpolicy.cli import main
from planpolicy.scenario import load_scenario
from planpolicy.simreport import (
    compare_html,
    monte_carlo_html,
    monte_carlo_json,
    run_html,
    run_json,
    run_text,
)
from planpolicy.simulate import SimOptions, compare, monte_carlo, run

from .conftest import ACME, EXAMPLES, POLICY_PATHS

Write = Callable[[str], Path]


def simulate(*args: str) -> int:
    argv = ["simulate", *args, "--no-progress"]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    return main(argv)


def test_text_is_a_timeline_with_the_end_of_each_plan(bundle: PolicyBundle) -> None:
    result = run(load_scenario(EXAMPLES / "conflicting_plan.yaml", bundle), bundle)
    text = run_text(result)
    lines = text.splitlines()
    assert lines[0] == (
        "scenario `conflicting_plan`: A second plan for the same account is rejected while the "
        "first one is ACTIVE."
    )
    header = next(i for i, line in enumerate(lines) if line.startswith("day "))
    assert lines[header].split() == ["day", "time", "plan", "/", "account", "event", "by", "reason"]
    assert re.search(
        r"^day 6 +15:00 +rd-initech-carol +activation_rejected +orchestrator +plan `rd-initech` "
        r"is already ACTIVE",
        text,
        re.M,
    )
    assert "  rd-initech  COMPLETED (objective_met) on day 33 12:00" in lines
    assert "expectations: 5 passed, 0 failed" in lines
    assert re.search(r"^ran \d+ of 34,561 ticks \(5m\) in [\d.]+ s: ", lines[-1])


def test_a_failed_expectation_says_what_was_expected_and_what_happened(
    write_scenario: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        ACME
        + "  timeline:\n    - {at: day 20, set: {account.renewal.status: RENEWED}}\n"
        + "  expect:\n"
        + "    - {plan: rd-acme, status: COMPLETED, reason: objective_met, before: day 10}\n"
        + "    - {plan: rd-acme, step: ESCALATE_SUPPORT_RISK, runs: true}\n"
    )
    assert simulate(str(path)) == 1
    out = capsys.readouterr().out
    assert "expectations: 0 passed, 2 failed" in out
    assert f"  FAIL  {path}:18:7: plan `rd-acme` ends COMPLETED with reason `objective_met` " in out
    assert (
        "        expected: plan `rd-acme` ends COMPLETED with reason `objective_met` "
        "before day 10 00:00\n"
        "        actual:   it ended COMPLETED (objective_met) on day 20 00:00\n"
    ) in out
    assert "        actual:   it was dispatched 0 times; it is PENDING\n" in out


def test_json_holds_the_full_trace(bundle: PolicyBundle) -> None:
    result = run(load_scenario(EXAMPLES / "renewal_saved.yaml", bundle), bundle)
    data = json.loads(run_json(result))
    assert data["ok"] is True
    assert data["scenario"]["name"] == "renewal_saved"
    assert data["scenario"]["tick"] == "5m"
    assert data["policies"]["digest"] == bundle.digest
    [plan] = data["plans"]
    assert plan["status"] == "COMPLETED"
    assert plan["record"]["version"] > 100  # the idle polls a real loop makes are counted
    ledger = plan["ledger"]
    assert [e["seq"] for e in ledger] == list(range(1, len(ledger) + 1))
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(ledger))
    assert ledger[-1]["event"] == "completed"
    assert {a["status"] for a in plan["attempts"]} == {"SUCCEEDED", "FAILED"}
    assert data["timeline"][0] == {
        "time": "2026-01-05T00:00:00+00:00",
        "day": "day 0 00:00",
        "kind": "ledger",
        "plan": "rd-acme",
        "account": "acme",
        "event": "created",
        "actor": "proposer-bot",
        "step": None,
        "attempt": None,
        "reason": "plan proposed",
    }
    assert [e["passed"] for e in data["expectations"]] == [True] * 4


def _check_page(page: str) -> ET.Element:
    """Well-formed (parses as XML) and self-contained (nothing fetched from elsewhere)."""
    assert page.startswith("<!DOCTYPE html>\n")
    root = ET.fromstring(page.split("\n", 1)[1])
    assert root.tag == "html"
    for element in root.iter():
        for name in ("src", "href"):
            value = element.get(name, "")
            assert not value.startswith(("http://", "https://", "//")), (element.tag, value)
        assert element.tag not in ("script", "link", "img", "iframe", "object")
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "@import" not in page
    return root


def test_html_is_a_self_contained_page_with_a_chart(bundle: PolicyBundle) -> None:
    result = run(load_scenario(EXAMPLES / "support_escalation_expiry.yaml", bundle), bundle)
    root = _check_page(run_html(result))
    svg = [e for e in root.iter() if e.tag == "svg"]
    assert len(svg) == 1
    titles = [t.text or "" for t in svg[0].iter("title")]
    assert any(t.startswith("ACTIVE from day 0 09:00 to day 3 09:00") for t in titles)
    assert any("resume refused (bob)" in t for t in titles)
    assert any("signals.open_p1_tickets = 1" in t for t in titles)
    text = "".join(root.itertext())
    assert "rd-globex" in text
    assert "ESCALATE_SUPPORT_RISK" in text
    assert "Expectations" in text


def test_other_pages_are_self_contained_too(bundle: PolicyBundle) -> None:
    scenario = load_scenario(EXAMPLES / "meeting_odds.yaml", bundle)
    _check_page(monte_carlo_html(monte_carlo(scenario, bundle, 3)))
    _check_page(compare_html(compare(scenario, bundle, bundle)))
    data = json.loads(monte_carlo_json(monte_carlo(scenario, bundle, 2, SimOptions(seed=4))))
    assert data["runs"] == 2 and len(data["plans"]) == 3


def test_out_writes_the_report_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.html"
    assert (
        simulate(str(EXAMPLES / "renewal_saved.yaml"), "--format", "html", "--out", str(out)) == 0
    )
    assert capsys.readouterr().out == ""
    _check_page(out.read_text())


def test_progress_bar_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", str(EXAMPLES / "renewal_saved.yaml"), "--progress", "--format", "json"]
    for directory in POLICY_PATHS:
        argv += ["--policies", directory]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "\rrenewal_saved [" in captured.err
    assert "100%" in captured.err
    json.loads(captured.out)


def test_a_busy_page_marks_fact_changes_on_each_plan(bundle: PolicyBundle) -> None:
    scenario = load_scenario(Path(__file__).parent / "scenarios" / "busy_week.yaml", bundle)
    page = run_html(run(scenario, bundle))
    _check_page(page)
    assert page.count('stroke-dasharray="3 3"') == 4  # few changes: a line across the chart
