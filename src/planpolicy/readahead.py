"""Read many YAML files in forked workers that send back only plain data.

Reading and loading the files is about half of linting 1,000 plan types.
:func:`read_files` splits the files into ``jobs`` shares: this process reads
the first while one forked worker per other share reads its own and sends
back, per file, its text, each document's index and plain data, and the
diagnostics loading gave (``marshal``: ~3 MB for 500 plan types, read back in
~20 ms). Node positions are not sent: a document a worker read finds them by
composing its text again here, and only when a diagnostic asks for one
(:func:`planpolicy.loader.restore_file`). What is reported is therefore the
same as when this process reads everything.

Workers are forked (:mod:`planpolicy.forked`); where that is unavailable, or
a worker fails or sends something unreadable, this process reads that share
itself.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planpolicy import forked
from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Location, Severity
from planpolicy.loader import LoadLimits, SourceFile, load_file_text, restore_file

__all__ = ["MIN_FILES", "read_files"]

MIN_FILES = 128
"""Below this many files, forking costs more than it saves."""

Loaded = tuple[SourceFile | None, list[Diagnostic]]


def read_one(path: Path, limits: LoadLimits) -> Loaded:
    """Load one file, with its own diagnostics."""
    sink = DiagnosticSink()
    loaded, _text = load_file_text(path, sink, limits=limits)
    return loaded, list(sink)


def read_files(paths: Sequence[Path], limits: LoadLimits, jobs: int) -> list[Loaded]:
    """Load ``paths`` (in order), in ``jobs`` processes when there are many."""
    if jobs < 2 or len(paths) < MIN_FILES or not hasattr(os, "fork"):
        return [read_one(path, limits) for path in paths]
    jobs = min(jobs, len(paths) // (MIN_FILES // 2))
    size = -(-len(paths) // jobs)
    shares = [list(paths[i : i + size]) for i in range(0, len(paths), size)]
    workers = [_start(share, limits) for share in shares[1:]]
    waiting = [worker for worker in workers if worker is not None]
    try:
        results = [read_one(path, limits) for path in shares[0]]
        for share, worker in zip(shares[1:], workers, strict=True):
            if worker is not None:
                waiting.remove(worker)
            delivered = _collect(worker, len(share))
            if delivered is None:
                delivered = [read_one(path, limits) for path in share]
            results.extend(delivered)
    finally:
        for worker in waiting:  # only when interrupted: no fd or process is left behind
            forked.abandon(worker)
    return results


def _start(share: list[Path], limits: LoadLimits) -> forked.Worker | None:
    """Fork a worker reading ``share``."""
    return forked.start(lambda: marshal.dumps([_encode(path, limits) for path in share]))


def _collect(worker: forked.Worker | None, count: int) -> list[Loaded] | None:
    """A worker's results, or None when it failed or sent something else."""
    data = None if worker is None else forked.collect(worker)
    if data is None:
        return None
    try:
        items = marshal.loads(data)
        results = [_decode(item) for item in items]
    except (ValueError, EOFError, TypeError, KeyError):
        return None
    return results if len(results) == count else None


def _encode(path: Path, limits: LoadLimits) -> tuple[Any, ...]:
    sink = DiagnosticSink()
    loaded, text = load_file_text(path, sink, limits=limits)
    documents = None
    if loaded is not None:
        documents = [(document.index, document.data) for document in loaded.documents]
    shown = loaded.path if loaded is not None else str(path)
    return (shown, text, documents, [_encode_diagnostic(d) for d in sink])


def _decode(item: tuple[Any, ...]) -> Loaded:
    shown, text, documents, diagnostics = item
    loaded = None
    if documents is not None:
        loaded = restore_file(shown, text, [(int(i), data) for i, data in documents])
    return loaded, [_decode_diagnostic(d) for d in diagnostics]


def _encode_diagnostic(diagnostic: Diagnostic) -> tuple[Any, ...]:
    loc = diagnostic.location
    where = None if loc is None else (loc.file, loc.line, loc.column, loc.end_line, loc.end_column)
    return (
        diagnostic.code,
        diagnostic.message,
        where,
        diagnostic.severity.value,
        diagnostic.hint,
        diagnostic.rule,
    )


def _decode_diagnostic(item: tuple[Any, ...]) -> Diagnostic:
    code, message, where, severity, hint, rule = item
    location = None if where is None else Location(*where)
    return Diagnostic(code, message, location, Severity(severity), hint, rule)
