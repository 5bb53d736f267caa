"""One forked worker that computes bytes and sends them back through a pipe.

:mod:`planpolicy.readahead` and :mod:`planpolicy.celahead` give a share of
their work to such a worker and do the rest in this process meanwhile. Only
POSIX ``fork`` is used (no ``multiprocessing``: importing and starting it
costs more than it saves here). A worker that fails delivers nothing, never
an exception: the caller then does that share itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Worker", "abandon", "collect", "held_signals", "start"]


@dataclass(frozen=True)
class Worker:
    """A started worker: its process id and the end of the pipe to read."""

    pid: int
    reader: int


_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGALRM")
    if hasattr(signal, name)
)
"""Signals held back while a worker is forked and while it is reaped (see :func:`start`)."""

_unheld: list[set[int | signal.Signals]] = []  # the signal mask before the outermost hold


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Hold back interrupting signals (SIGINT, SIGTERM, SIGHUP, SIGALRM) until the block ends.

    A signal arriving meanwhile is handled when the block ends, so code that
    starts workers and records them inside the block never loses one. (Only
    this thread holds them back: in a process with other threads, a signal
    sent to the process may be taken by one of them. Workers are started
    from processes without other threads: the command line's, and a
    simulation checks.)
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    outermost = not _unheld
    if outermost:
        _unheld.append(previous)
    try:
        yield
    finally:
        if outermost:
            _unheld.clear()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start(work: Callable[[], bytes]) -> Worker | None:
    """Fork a worker that runs ``work`` and sends back its bytes; None if it cannot start.

    Signals are held back around ``fork`` so that the worker never handles
    one before it is inside its own guard (it never runs on into the
    caller's code); the worker then takes signals as the caller did before
    any hold. A caller that must not lose a started worker to a signal
    starts it and records it inside :func:`held_signals`.
    """
    if not hasattr(os, "fork"):
        return None
    try:
        reader, writer = os.pipe()
    except OSError:
        return None
    with held_signals():
        unheld = _unheld[0] if _unheld else None
        try:
            pid = os.fork()
        except OSError:
            os.close(reader)
            os.close(writer)
            return None
        if pid == 0:  # the worker: never returns into the caller
            status = 1
            try:
                if unheld is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, unheld)
                os.close(reader)
                data = work()
                with os.fdopen(writer, "wb") as out:
                    out.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(writer)
        return Worker(pid, reader)


def collect(worker: Worker) -> bytes | None:
    """What ``worker`` sent, once it has ended; None when it failed.

    Where the worker's status cannot be known (``SIGCHLD`` ignored, so the
    system reaped it), what it sent is returned: callers check that it
    decodes, so a worker that died midway still delivers nothing usable.
    Interrupted while reading (a signal's exception), it stops the worker
    and raises: the worker is never left behind.
    """
    try:
        with os.fdopen(worker.reader, "rb") as incoming:
            data = incoming.read()
    except BaseException:
        _stop(worker.pid)
        raise
    # the worker has closed its end: it is exiting. Reaped with signals held back, so
    # that no exception comes between reaping it and returning.
    with held_signals():
        try:
            _pid, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            return data
        return data if status == 0 else None


def abandon(worker: Worker) -> None:
    """Stop ``worker`` and release its pipe and process (when its results are not wanted)."""
    with contextlib.suppress(OSError):
        os.close(worker.reader)
    _stop(worker.pid)


def _stop(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
