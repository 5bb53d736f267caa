"""Hostile policy files through the real CLI: a located diagnostic, exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.engine.conftest import PolicyTree

BOMB = """\
apiVersion: planpolicy/v1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

CASES = {
    "alias_bomb": (BOMB, "PP106"),
    "deep_nesting": ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "PP104"),
    "unsafe_tag": ('x: !!python/object/apply:os.system ["echo pwned"]\n', "PP103"),
    "duplicate_keys": ("apiVersion: planpolicy/v1\nkind: PlanType\nkind: Lifecycle\n", "PP102"),
    "syntax_error": ("apiVersion: planpolicy/v1\nkind: [PlanType\n", "PP101"),
    "huge_file": ("# " + "x" * 2_000_000 + "\n", "PP105"),
    "not_utf8": (b"apiVersion: \xff\xfe\n", "PP108"),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planpolicy.cli", "lint", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_is_refused_with_a_located_diagnostic(tree: PolicyTree, case: str) -> None:
    content, code = CASES[case]
    target = tree.root / "policies" / f"{case}.yaml"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    started = time.monotonic()
    done = _run(*tree.paths)
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    import json

    report = json.loads(done.stdout)
    mine = [d for d in report["diagnostics"] if d["file"] == str(target)]
    located = [d for d in mine if d["code"] == code]
    assert located, mine
    assert located[0]["line"] >= 1 and located[0]["column"] >= 1
    # The rest of the bundle is still checked: the valid files produce no errors.
    others = [
        d for d in report["diagnostics"] if d["file"] != str(target) and d["severity"] == "error"
    ]
    assert others == []


def test_usage_error_exits_2(tmp_path: Path) -> None:
    done = _run("--format", "yaml")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_is_refused_exactly_as_yaml_refuses_it(code: int) -> None:
    from planpolicy import loader

    for text in (chr(code), f"kind: a{chr(code)}b\n", f"x: 1\n# {chr(code)}\n" * 3):
        fast = loader._refused_character(text)
        slow = loader._NON_PRINTABLE_RE.search(text)
        assert (fast is None) == (slow is None), repr(text)
        if fast is not None and slow is not None:
            assert fast.start() == slow.start()


@given(st.text(max_size=60))
def test_refused_characters_found_as_the_full_check_finds_them(text: str) -> None:
    from planpolicy import loader

    fast, slow = loader._refused_character(text), loader._NON_PRINTABLE_RE.search(text)
    assert (fast and fast.start()) == (slow and slow.start())
