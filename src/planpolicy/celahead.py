"""Check many new CEL expressions in two processes at once.

Parsing and checking an expression no cache holds costs ~0.3 to 0.5 ms, two
thirds of it parsing (:mod:`planpolicy.celsyntax`); linting 1,000 edited
plan types checks about 1,000 of them. :func:`check_ahead` forks one worker
that checks half of the new expressions while this process checks the other
half; the worker sends back the results as the check cache holds them (a
few hundred bytes each), and this process takes them as if it had read them
from that cache. What the compiler then reports is therefore what a warm
cache gives, and anything the worker did not deliver (it failed, or a result
is never cached) is simply checked here when the compiler asks for it.

The worker is forked (:mod:`planpolicy.forked`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from planpolicy import forked
from planpolicy.cel import CelEnvironment, build_check_parser

__all__ = ["MIN_EXPRESSIONS", "check_ahead"]

MIN_EXPRESSIONS = 128
"""Below this many new expressions, forking costs more than it saves."""


def check_ahead(
    env: CelEnvironment,
    items: Iterable[tuple[str, bool]],
    *,
    minimum: int = MIN_EXPRESSIONS,
) -> int:
    """Check the new ``(source, expect_bool)`` of ``items`` in this process and a worker.

    Returns how many results the worker delivered (0 when there were fewer
    than ``minimum`` new expressions, or fork is unavailable or failed).
    Never raises for a worker's failure.
    """
    todo = env.uncached(items)
    if len(todo) < max(minimum, 2) or not hasattr(os, "fork"):
        return 0
    build_check_parser()  # before forking: not built in both processes
    theirs, ours = todo[: len(todo) // 2], todo[len(todo) // 2 :]
    worker = forked.start(
        lambda: json.dumps(
            [[s, b, env.compile_encoded(s, b)] for s, b in theirs], separators=(",", ":")
        ).encode()
    )
    if worker is None:
        return 0
    try:
        for source, expect_bool in ours:
            env.compile(source, expect_bool=expect_bool)
    except BaseException:  # interrupted: leave no fd or process behind
        forked.abandon(worker)
        raise
    data = forked.collect(worker)
    if data is None:
        return 0
    return _adopt(env, data)


def _adopt(env: CelEnvironment, data: bytes) -> int:
    try:
        results = json.loads(data)
    except ValueError:
        return 0
    adopted = 0
    for item in results if isinstance(results, list) else ():
        if not (isinstance(item, list) and len(item) == 3):
            continue
        source, expect_bool, value = item
        if isinstance(source, str) and isinstance(expect_bool, bool) and value is not None:
            adopted += env.adopt(source, expect_bool, value)
    return adopted
