"""Adapters of the :class:`~planpolicy.proposal.Proposer` port.

- ``rules`` (:mod:`planpolicy.proposers.rules`): the plan types' proposal rules;
  deterministic and offline, the default.
- ``bedrock`` (:mod:`planpolicy.proposers.bedrock`): an LLM on Amazon Bedrock
  (Converse API with a tool schema generated from the bundle).

Whatever an adapter returns goes through :func:`planpolicy.proposal.review`.
"""

from __future__ import annotations

__all__ = ["PROPOSER_NAMES"]

PROPOSER_NAMES = ("rules", "bedrock")
"""Adapter names, as the CLI and the API accept them."""
