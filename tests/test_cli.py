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


PLANPOLICY = Path(sys.executable).parent / "planpolicy"


def _broken_tree(tmp_path: Path, count: int) -> Path:
    """A copy of the bundled files plus ``count`` plan types with an unknown step each."""
    import shutil

    shutil.copytree(REPO / "policies", tmp_path / "policies")
    shutil.copytree(REPO / "plan_types", tmp_path / "plan_types")
    text = (REPO / "plan_types" / "renewal_defense.yaml").read_text(encoding="utf-8")
    for i in range(count):
        broken = text.replace("RENEWAL_DEFENSE", f"PT_{i:03d}").replace("risk: LOW", "risk: LOWEST")
        (tmp_path / "plan_types" / f"pt_{i:03d}.yaml").write_text(broken, encoding="utf-8")
    return tmp_path


def test_the_program_writes_every_line_and_its_exit_code_when_exiting_quickly(
    tmp_path: Path,
) -> None:
    root = _broken_tree(tmp_path, 150)
    run = subprocess.run(
        [str(PLANPOLICY), "lint", "--format", "json", "policies", "plan_types"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    import json

    report = json.loads(run.stdout)  # complete: parses to the end
    assert report["summary"]["files"] == 155 and report["summary"]["errors"] >= 150
    out = root / "report.txt"
    again = subprocess.run(
        [str(PLANPOLICY), "lint", "--out", str(out), "policies", "plan_types"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=False,
    )
    assert again.returncode == 1 and again.stdout == ""
    assert out.read_text(encoding="utf-8").rstrip().endswith("in 155 files")


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    root = _broken_tree(tmp_path, 400)  # a report larger than a pipe's buffer
    run = subprocess.run(
        f"{PLANPOLICY} lint --format json policies plan_types | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=False,
    )
    assert len(run.stdout.splitlines()) == 1
    assert "Traceback" not in run.stderr and "Exception" not in run.stderr


@pytest.mark.parametrize("with_thread", [False, True])
def test_a_quick_exit_flushes_output_and_runs_exit_handlers(
    tmp_path: Path, with_thread: bool
) -> None:
    code = (
        "import atexit, sys, threading, time\n"
        "from planpolicy.cli import _quick_exit\n"
        "atexit.register(lambda: print('handler ran'))\n"
        + (
            "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
            if with_thread
            else ""
        )
        + "sys.stdout.write('buffered ')\n"
        "_quick_exit(3)\n"
    )
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    out = tmp_path / "out.txt"
    with out.open("w") as handle:  # a file: standard output is block-buffered
        run = subprocess.run(
            [sys.executable, "-c", code], stdout=handle, env=env, timeout=60, check=False
        )
    assert run.returncode == 3
    expected = (
        ["buffered handler ran"] if not with_thread else ["buffered thread done", "handler ran"]
    )
    assert out.read_text().splitlines() == expected
