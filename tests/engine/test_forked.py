"""The forked worker: signals around fork, and no worker left behind."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from planpolicy import forked


class Interrupted(Exception):
    pass


def _mask() -> bytes:
    return ",".join(
        str(int(s)) for s in sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    ).encode()


def test_a_worker_takes_signals_as_its_caller_did() -> None:
    for held in (False, True):
        if held:
            with forked.held_signals():
                worker = forked.start(_mask)
        else:
            worker = forked.start(_mask)
        assert worker is not None
        data = forked.collect(worker)
        assert data is not None
        blocked = {int(s) for s in data.decode().split(",") if s}
        assert int(signal.SIGINT) not in blocked
        assert int(signal.SIGTERM) not in blocked
    assert int(signal.SIGINT) not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_signal_during_a_hold_is_handled_when_it_ends() -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    recorded = []
    try:
        with pytest.raises(Interrupted), forked.held_signals():
            # to this thread: other threads of the test session do not hold it back
            signal.pthread_kill(threading.get_ident(), signal.SIGALRM)
            worker = forked.start(lambda: b"done")
            recorded.append(worker)  # reached: the signal waits for the hold's end
        assert len(recorded) == 1 and recorded[0] is not None
        assert forked.collect(recorded[0]) == b"done"
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_an_interrupted_collect_stops_its_worker() -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    def forever() -> bytes:
        signal.pause()
        return b""

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        worker = forked.start(forever)
        assert worker is not None
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            forked.collect(worker)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ChildProcessError):
        os.waitpid(worker.pid, os.WNOHANG)  # stopped and reaped
