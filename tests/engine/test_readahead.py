"""Reading files in forked workers (planpolicy.readahead) gives what one process gives."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from tests.engine.conftest import REPO, PolicyTree

from planpolicy import readahead
from planpolicy.compiler import compile_bundle
from planpolicy.loader import LoadLimits, SourceFile, discover, restore_file

TEMPLATE = (REPO / "plan_types" / "renewal_defense.yaml").read_text(encoding="utf-8")


def _files(root: Path, count: int) -> list[Path]:
    """``count`` plan types, some broken in ways that need positions or stop loading."""
    out = []
    for i in range(count):
        text = TEMPLATE.replace("RENEWAL_DEFENSE", f"PT_{i:03d}")
        if i % 5 == 0:
            text = text.replace("risk: LOW", "risk: LOWEST")  # schema error: a position
        if i % 7 == 0:
            text = text.replace("account.renewal.", "account.renewl.", 1)  # inside CEL
        if i % 11 == 0:
            text = "\ufeff" + text + "\n---\nkind: [broken\n"  # BOM; syntax error later on
        if i % 13 == 0:
            text = text + "---\n---\napiVersion: x\nkind: Other\n"  # empty and extra documents
        path = root / f"pt_{i:03d}.yaml"
        if i % 17 == 0:
            path.write_bytes(b"kind: \xff\n")  # not utf-8
        else:
            path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def _positions(file: SourceFile | None) -> object:
    if file is None:
        return None
    return [
        (doc.path, doc.index, doc.data, dict(doc.marks), dict(doc.key_marks), doc.lines)
        for doc in file.documents
    ]


@pytest.mark.parametrize("jobs", [2, 3])
def test_workers_give_the_same_files_positions_and_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    paths = _files(tmp_path, 60)
    limits = LoadLimits()
    alone = readahead.read_files(paths, limits, 1)
    shared = readahead.read_files(paths, limits, jobs)
    assert [d for _, d in shared] == [d for _, d in alone]
    assert [_positions(f) for f, _ in shared] == [_positions(f) for f, _ in alone]
    assert any(f is None for f, _ in alone) and any(d for _, d in alone)


def test_a_whole_lint_reports_the_same_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    tree = PolicyTree(tmp_path)
    _files(tmp_path / "plan_types", 40)
    alone = compile_bundle(tree.paths, jobs=1)
    shared = compile_bundle(tree.paths, jobs=2)
    assert shared.diagnostics == alone.diagnostics
    assert {d.code for d in alone.diagnostics} >= {"PP101", "PP108", "PP403"}
    assert [d.name for d in shared.documents] == [d.name for d in alone.documents]


def test_a_failing_worker_has_its_share_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    paths = _files(tmp_path, 20)
    parent = os.getpid()
    encode = readahead._encode

    def failing(path: Path, limits: LoadLimits) -> object:
        if os.getpid() != parent:
            raise RuntimeError("the worker fails")
        return encode(path, limits)

    monkeypatch.setattr(readahead, "_encode", failing)
    limits = LoadLimits()
    shared = readahead.read_files(paths, limits, 2)
    alone = readahead.read_files(paths, limits, 1)
    assert [_positions(f) for f, _ in shared] == [_positions(f) for f, _ in alone]
    assert [d for _, d in shared] == [d for _, d in alone]


def test_unreadable_results_are_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    paths = _files(tmp_path, 20)

    def garbled(item: object) -> object:
        raise ValueError("unexpected data")

    monkeypatch.setattr(readahead, "_decode", garbled)
    shared = readahead.read_files(paths, LoadLimits(), 2)
    alone = readahead.read_files(paths, LoadLimits(), 1)
    assert [_positions(f) for f, _ in shared] == [_positions(f) for f, _ in alone]


def test_restored_documents_find_positions_again_and_pickle_as_data() -> None:
    text = "\ufeff# lead\nkind: A\nspec:\n  x: [1, 2]\n---\n---\nkind: B\n"
    restored = restore_file("f.yaml", text, [(0, {"kind": "A"}), (2, {"kind": "B"})])
    first, second = restored.documents
    assert first.location(["spec", "x", 1]).line == 4
    assert first.key_location(["spec"]).line == 3
    assert second.location(["kind"]).line == 7
    copy = pickle.loads(pickle.dumps(first.marks))
    assert isinstance(copy, dict) and copy == dict(first.marks)


def test_few_files_are_read_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise AssertionError("forked for a few files")

    monkeypatch.setattr(os, "fork", no_fork)
    paths = discover([REPO / "policies", REPO / "plan_types"])
    results = readahead.read_files(paths, LoadLimits(), 8)
    assert all(f is not None for f, _ in results)


def test_workers_are_reaped_when_the_system_reaps_children(tmp_path: Path) -> None:
    """With SIGCHLD ignored the worker's status is unknown: its results still count."""
    import subprocess
    import sys

    _files(tmp_path, 20)
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "from pathlib import Path\n"
        "from planpolicy import readahead\n"
        "from planpolicy.loader import LoadLimits\n"
        "readahead.MIN_FILES = 8\n"
        "paths = sorted(Path(sys.argv[1]).glob('*.yaml'))\n"
        "shared = readahead.read_files(paths, LoadLimits(), 2)\n"
        "alone = readahead.read_files(paths, LoadLimits(), 1)\n"
        "print([d for _, d in shared] == [d for _, d in alone], len(shared))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "20"]


def test_an_interrupted_read_leaves_no_worker_or_pipe_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planpolicy import forked

    monkeypatch.setattr(readahead, "MIN_FILES", 8)
    paths = _files(tmp_path, 30)
    started: list[int] = []
    start = forked.start

    def recording(work: object) -> forked.Worker | None:
        worker = start(work)  # type: ignore[arg-type]
        if worker is not None:
            started.append(worker.pid)
        return worker

    monkeypatch.setattr(forked, "start", recording)
    read_one = readahead.read_one
    calls: list[Path] = []

    def interrupted(path: Path, limits: LoadLimits) -> object:
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return read_one(path, limits)

    monkeypatch.setattr(readahead, "read_one", interrupted)
    descriptors = len(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        readahead.read_files(paths, LoadLimits(), 3)
    assert len(started) == 2
    for pid in started:  # reaped: no longer this process's children
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert len(os.listdir("/proc/self/fd")) == descriptors
