"""Loading a scenario and running it pause automatic garbage collection, and restore it after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from planpolicy import PolicyBundle
from planpolicy.collector import long_operation
from planpolicy.scenario import load_scenario
from planpolicy.simulate import SimOptions, run

from .conftest import EXAMPLES


@pytest.fixture
def collector_state() -> Iterator[tuple[bool, tuple[int, int, int], int]]:
    """The collector's settings before the test; they are put back afterwards whatever happens."""
    state = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    yield state
    gc.set_threshold(*state[1])
    if state[0]:
        gc.enable()
    else:
        gc.disable()


def _now() -> tuple[bool, tuple[int, int, int], int]:
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


def test_a_paused_operation_collects_nothing_by_itself_and_restores_the_collector(
    collector_state: tuple[bool, tuple[int, int, int], int],
) -> None:
    gc.enable()
    before = _now()
    with pytest.raises(RuntimeError), long_operation(pause=True):
        assert not gc.isenabled()
        raise RuntimeError("the operation fails")
    assert _now() == before
    with long_operation():
        assert gc.isenabled()  # only a paused operation turns collection off
    assert _now() == before


def test_collection_turned_off_by_the_caller_stays_off(
    collector_state: tuple[bool, tuple[int, int, int], int],
) -> None:
    gc.disable()
    with long_operation(pause=True), long_operation():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_cyclic_garbage_of_a_paused_operation_is_found_afterwards(
    collector_state: tuple[bool, tuple[int, int, int], int],
) -> None:
    gc.enable()
    gc.collect()
    with long_operation(pause=True):
        for _ in range(100):
            cycle: list[object] = []
            cycle.append(cycle)
        del cycle
    assert gc.collect() >= 100


def test_what_a_paused_operation_made_is_not_left_for_a_young_collection(
    collector_state: tuple[bool, tuple[int, int, int], int],
) -> None:
    """It joins the oldest generation: no young collection is due to scan it all once."""
    gc.enable()
    assert gc.get_freeze_count() == 0
    with long_operation(pause=True):
        kept = [[n] for n in range(50_000)]
        assert gc.get_count()[0] > 40_000
    assert gc.get_count()[0] < 100
    assert gc.get_freeze_count() == 0
    assert all(gc.is_tracked(item) for item in kept[:10])


def test_loading_and_running_a_scenario_pause_collection(
    bundle: PolicyBundle, collector_state: tuple[bool, tuple[int, int, int], int]
) -> None:
    gc.enable()
    before = _now()
    scenario = load_scenario(EXAMPLES / "renewal_saved.yaml", bundle)
    assert _now() == before
    seen: list[bool] = []
    run(scenario, bundle, SimOptions(progress=lambda _done: seen.append(gc.isenabled())))
    assert seen
    assert not any(seen)
    assert _now() == before
