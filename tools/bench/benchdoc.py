"""Record a benchmark's figures in docs/benchmarks.md (shared by the bench scripts)."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def write_section(section: str, text: str, doc: Path = DOC) -> None:
    """Replace the ``section`` heading's block of ``doc`` with ``text``, or append it."""
    existing = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    lines = existing.splitlines()
    if section in lines:
        start = lines.index(section)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = [*text.rstrip("\n").splitlines(), ""]
        new = "\n".join(lines).rstrip("\n") + "\n"
    else:
        new = existing.rstrip("\n") + "\n\n" + text
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
