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
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Worker", "abandon", "collect", "start"]


@dataclass(frozen=True)
class Worker:
    """A started worker: its process id and the end of the pipe to read."""

    pid: int
    reader: int


def start(work: Callable[[], bytes]) -> Worker | None:
    """Fork a worker that runs ``work`` and sends back its bytes; None if it cannot start."""
    if not hasattr(os, "fork"):
        return None
    try:
        reader, writer = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(reader)
        os.close(writer)
        return None
    if pid == 0:  # the worker: never returns into the caller
        status = 1
        try:
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
    """
    with os.fdopen(worker.reader, "rb") as incoming:
        data = incoming.read()
    try:
        _pid, status = os.waitpid(worker.pid, 0)
    except ChildProcessError:
        return data
    return data if status == 0 else None


def abandon(worker: Worker) -> None:
    """Stop ``worker`` and release its pipe and process (when its results are not wanted)."""
    with contextlib.suppress(OSError):
        os.close(worker.reader)
    with contextlib.suppress(OSError):
        os.kill(worker.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(worker.pid, 0)
