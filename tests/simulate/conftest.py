"""Fixtures for simulation tests: the bundled policies and scenario files to write."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from planpolicy import PolicyBundle, load_bundle

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "scenarios"
POLICY_PATHS = [str(REPO / "policies"), str(REPO / "plan_types")]


@pytest.fixture(scope="session")
def bundle() -> PolicyBundle:
    """The bundled policies, compiled once."""
    return load_bundle(POLICY_PATHS)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[[str], Path]:
    """Write a scenario (dedented YAML) into a temp dir and return its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


ACME = """\
apiVersion: planpolicy/v1
kind: Scenario
metadata: {name: acme, description: a small scenario for tests}
spec:
  start: 2026-01-05T00:00:00Z
  horizon_days: 30
  people: {alice: [account_executive], mia: [revenue_manager], dana: [revenue_director]}
  accounts:
    acme:
      account: {account_id: acme, renewal_date: 2026-03-20T00:00:00Z, renewal: {status: AT_RISK}}
      signals: {open_p1_tickets: 2}
  plans:
    - {id: rd-acme, plan_type: RENEWAL_DEFENSE, account: acme, owner: alice,
       approve: {by: dana, at: day 0 09:00}}
"""
"""A valid scenario to start from; tests append to or edit it."""
