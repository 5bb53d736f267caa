"""``lint --base REF``: a changed document must bump ``metadata.version``.

Compares each document with the same kind and name at the git ref ``base``
(by parsed content, so comments and formatting do not count as changes).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from planpolicy.diagnostics import Diagnostic, DiagnosticSink, Severity
from planpolicy.loader import load_text
from planpolicy.schema import TypedDocument

__all__ = ["VERSION_NOT_BUMPED", "check_versions"]

VERSION_NOT_BUMPED = "PP510"


class GitError(RuntimeError):
    """git could not answer (not a repository, unknown ref)."""


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise GitError(done.stderr.strip().splitlines()[0] if done.stderr.strip() else "git failed")
    return done.stdout


def _content(data: Any) -> str:
    body = {k: v for k, v in data.items() if k != "metadata"}
    meta = {
        k: v for k, v in data.get("metadata", {}).items() if k not in ("version", "description")
    }
    return json.dumps([body, meta], sort_keys=True, default=str)


def _documents_at(base: str, path: Path) -> Iterator[dict[str, Any]]:
    root = Path(_git(["rev-parse", "--show-toplevel"], path.parent).strip())
    rel = path.resolve().relative_to(root.resolve())
    try:
        text = _git(["show", f"{base}:{rel.as_posix()}"], root)
    except GitError:
        return  # the file is new since base: nothing to compare
    loaded = load_text(text, str(path), DiagnosticSink())
    if loaded is None:
        return
    for doc in loaded.documents:
        if isinstance(doc.data, dict):
            yield doc.data


def check_versions(documents: Sequence[TypedDocument], base: str) -> Iterator[Diagnostic]:
    """Yield PP510 for each document changed since ``base`` without a version bump."""
    if documents:
        first = documents[0]
        try:
            _git(
                ["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
                Path(first.source.path).parent,
            )
        except GitError:
            yield Diagnostic(
                "PP511", f"cannot compare with `{base}`: not a git commit", None, Severity.ERROR
            )
            return
    for doc in documents:
        path = Path(doc.source.path)
        try:
            old_docs = list(_documents_at(base, path))
        except GitError as exc:
            yield Diagnostic(
                "PP511",
                f"cannot compare with `{base}`: {exc}",
                doc.source.location(()),
                Severity.ERROR,
            )
            return
        for old in old_docs:
            if old.get("kind") != doc.kind or old.get("metadata", {}).get("name") != doc.name:
                continue
            old_version = old.get("metadata", {}).get("version")
            if _content(old) != _content(doc.source.data) and (
                not isinstance(old_version, int) or doc.version <= old_version
            ):
                yield Diagnostic(
                    VERSION_NOT_BUMPED,
                    f"{doc.kind} `{doc.name}` changed since `{base}` but its version is still "
                    f"{doc.version}",
                    doc.source.location(("metadata", "version")),
                    Severity.ERROR,
                    f"set `metadata.version` to {max(doc.version, int(old_version or 0)) + 1}",
                    "version-not-bumped",
                )
