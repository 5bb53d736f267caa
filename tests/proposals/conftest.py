"""Fixtures for proposal tests: the bundled policies, a policy tree to break, example accounts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from tests.engine.conftest import REPO, PolicyTree

from planpolicy import PolicyBundle, load_bundle

if TYPE_CHECKING:
    from planpolicy.proposal import ProposalRequest

ACCOUNTS = REPO / "examples" / "accounts"
BUNDLED = [str(REPO / "policies"), str(REPO / "plan_types")]
RD = "plan_types/renewal_defense.yaml"


@pytest.fixture(scope="session")
def bundle() -> PolicyBundle:
    return load_bundle(BUNDLED)


@pytest.fixture
def tree(tmp_path: Path) -> PolicyTree:
    return PolicyTree(tmp_path)


def account_data(name: str) -> dict[str, Any]:
    """The parsed example account file ``examples/accounts/<name>.yaml``."""
    data: dict[str, Any] = yaml.safe_load((ACCOUNTS / f"{name}.yaml").read_text())
    return data


def request_for(name: str, **changes: Any) -> ProposalRequest:
    """The proposal request of an example account, with top-level fields replaced."""
    from planpolicy.proposal import ProposalRequest

    return ProposalRequest.from_mapping({**account_data(name), **changes})
