"""Run every benchmark under tools/bench (``make bench``) and print their figures.

Each ``bench_*.py`` is a standalone script; this runs them one after another
with the same interpreter so that the figures come from one session on one
machine. Pass names to run a subset: ``run_all.py lint gate``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {f"bench_{name}.py" for name in argv}
        scripts = [s for s in scripts if s.name in wanted]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], check=False)
        print(
            f"({script.stem}: {time.perf_counter() - start:.1f} s, exit {done.returncode})",
            flush=True,
        )
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
