"""CLI verbs of ``plan-orchestrator``, one module per verb.

Each module exposes ``register(subparsers)``, which adds its parser and sets
``run`` (a function ``(argparse.Namespace) -> int``) as a default. To add a
verb, write a module here and list its ``register`` in :data:`REGISTRY`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from orchestrator.commands import init, ledger, plan, run, serve, tick

__all__ = ["REGISTRY", "Register"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRY: tuple[Register, ...] = (
    init.register,
    plan.register,
    tick.register,
    run.register,
    ledger.register,
    serve.register,
)
"""Every verb's ``register``, in help order."""
