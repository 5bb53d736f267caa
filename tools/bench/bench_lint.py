"""Benchmark: `planpolicy lint` against `yamllint` on the same files, whole process, cold.

Generates 1,000 plan-type files (variants of the bundled RENEWAL_DEFENSE) next
to the bundled policies, then times, in the same run:

- `planpolicy lint` over the 1,000 files and the policies (target: under 2 s);
- `yamllint` over the same files;
- both on one file (target: planpolicy within 1.5x of yamllint).

Each figure is the median of several whole-process runs.

    .venv/bin/python tools/bench/bench_lint.py [--files 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def generate(root: Path, count: int) -> tuple[Path, Path]:
    """Write ``count`` plan types and a copy of the policies under ``root``."""
    policies = root / "policies"
    plan_types = root / "plan_types"
    shutil.copytree(REPO / "policies", policies)
    plan_types.mkdir()
    template = (REPO / "plan_types" / "renewal_defense.yaml").read_text()
    for i in range(count):
        text = template.replace("RENEWAL_DEFENSE", f"PLAN_TYPE_{i:04d}")
        text = text.replace("maxDurationDays: 120", f"maxDurationDays: {30 + i % 90}")
        text = text.replace('duration("2880h")', f'duration("{2000 + i}h")')
        (plan_types / f"plan_type_{i:04d}.yaml").write_text(text)
    return policies, plan_types


def timed(cmd: list[str], runs: int, cwd: Path) -> float:
    """Median wall time of ``runs`` runs of ``cmd`` (a failing lint still counts)."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    planpolicy = str(BIN / "planpolicy")
    yamllint = shutil.which("yamllint", path=str(BIN)) or shutil.which("yamllint")
    if yamllint is None:
        print("yamllint is not installed: pip install -e '.[test]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policies, plan_types = generate(root, args.files)
        one = plan_types / "plan_type_0000.yaml"
        many_pp = timed(
            [planpolicy, "lint", str(policies), str(plan_types)], max(args.runs // 2, 2), root
        )
        many_yl = timed([yamllint, str(plan_types)], max(args.runs // 2, 2), root)
        one_pp = timed([planpolicy, "lint", str(policies), str(one)], args.runs * 2, root)
        one_yl = timed([yamllint, str(one)], args.runs * 2, root)
    print(f"{'case':<34}{'planpolicy':>12}{'yamllint':>12}{'ratio':>8}")
    print(
        f"{f'{args.files} plan-type files':<34}{many_pp:>11.3f}s{many_yl:>11.3f}s{many_pp / many_yl:>8.2f}"
    )
    print(
        f"{'one file (+4 policy files), cold':<34}{one_pp:>11.3f}s{one_yl:>11.3f}s{one_pp / one_yl:>8.2f}"
    )
    print(
        f"target: {args.files} files under 2 s -> {'met' if many_pp < 2 else 'MISSED'}; "
        f"one file within 1.5x of yamllint -> {'met' if one_pp <= 1.5 * one_yl else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
