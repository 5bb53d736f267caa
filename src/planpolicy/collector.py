"""Garbage collection tuned for one long, allocation-heavy operation.

Loading a large scenario and running a simulation allocate millions of
objects that mostly live until the operation ends. With the interpreter's
defaults, each young collection (every 700 allocations) and the full
collections that follow scan the bundle's compiled rules and everything made
so far again and again: a third of the time of loading a 1,000-plan scenario.
:func:`long_operation` makes those collections rarer for the duration of the
operation and restores the settings afterwards. Nothing is kept from being
collected: unreachable cycles are still found, only less often.

Some operations make next to no cyclic garbage at all: loading a scenario
makes none and a simulation of 1,000 plans over 180 days a few thousand
objects, while their collections rescanned hundreds of thousands of lasting
objects (a tenth of their time). ``long_operation(pause=True)`` turns
automatic collection off for such an operation and, when it froze the objects
that existed before, moves what the operation made to the oldest generation
afterwards (unscanned); what cyclic garbage the operation made is found by the
next full collection.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["long_operation"]

_YOUNG_THRESHOLD = 20_000


@contextlib.contextmanager
def long_operation(*, pause: bool = False) -> Iterator[None]:
    """Fewer, cheaper garbage collections inside the ``with`` block (restored afterwards).

    What exists before the block (the bundle, the modules, the scenario) is
    frozen out of the collector's scans, unless the process froze objects
    itself or the block runs inside another one; young collections run every
    20,000 allocations instead of every 700. With ``pause``, none runs by
    itself inside the block (for operations that make next to no cyclic
    garbage); collection is enabled again afterwards if it was before, and
    what the block made joins the oldest generation without being scanned.
    """
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], _YOUNG_THRESHOLD), *threshold[1:])
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause and freeze:
            # Everything the operation made is young: the first collection after it
            # would scan all of it. Frozen and unfrozen, it joins the oldest
            # generation unscanned, and no young collection is due.
            gc.freeze()
        if enabled:
            gc.enable()
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()
