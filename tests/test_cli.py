"""The command line: the full verb list for help, and only the verb that runs is set up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from planpolicy.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
VERBS = [name.rpartition(".")[2] for name in COMMANDS]


def test_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    listed = [
        line.split()[0]
        for line in out.splitlines()
        if line.startswith("    ") and line[4:5].isalpha()
    ]
    assert listed == VERBS


def test_an_unknown_verb_is_a_usage_error_listing_the_verbs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["lnit"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lnit'" in err and all(verb in err for verb in VERBS)


def test_running_a_verb_imports_that_verb_only() -> None:
    code = (
        "import sys\n"
        "from planpolicy.cli import main\n"
        f"assert main(['lint', {str(REPO / 'policies')!r}, {str(REPO / 'plan_types')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('planpolicy.commands.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip().splitlines()[-1] == "['planpolicy.commands.lint']"


def test_lint_reads_in_one_process_per_cpu_up_to_a_bound() -> None:
    from planpolicy.commands.lint import MAX_AUTO_JOBS, auto_jobs

    assert auto_jobs(None) == 1
    assert auto_jobs(1) == 1
    assert auto_jobs(2) == 2
    assert auto_jobs(MAX_AUTO_JOBS) == MAX_AUTO_JOBS
    assert auto_jobs(64) == MAX_AUTO_JOBS
