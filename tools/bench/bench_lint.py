"""Benchmark: `planpolicy lint` against `yamllint` on the same files, whole process, cold.

Generates 1,000 plan-type files (variants of the bundled RENEWAL_DEFENSE) next
to the bundled policies, then times, in the same run:

- `planpolicy lint` over the 1,000 files and the policies (target: under 2 s);
- `yamllint` over the same files;
- both on one file (target: planpolicy within 1.5x of yamllint).

Every run is a fresh process. planpolicy is timed in two states of its cache
directory (``PLANPOLICY_CACHE_DIR``, private to the benchmark):

- cold cache: the file holds the CEL parse tables but no check result for
  these expressions (as after editing every file);
- warm cache: a previous run checked the same expressions (files unchanged).

Each figure is the median of several whole-process runs. planpolicy's modules
are byte-compiled first, as ``pip install`` does for yamllint's: with
``PYTHONDONTWRITEBYTECODE`` set, an editable install would otherwise compile
them from source in every process (~0.15 s).

    .venv/bin/python tools/bench/bench_lint.py [--files 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
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


def _run(cmd: list[str], cwd: Path, cache: Path | None) -> float:
    env = dict(os.environ)
    if cache is not None:
        env["PLANPOLICY_CACHE_DIR"] = str(cache)
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - start


def timed(cmd: list[str], runs: int, cwd: Path, cache: Path | None = None) -> float:
    """Median wall time of ``runs`` runs of ``cmd`` (a failing lint still counts)."""
    return statistics.median(_run(cmd, cwd, cache) for _ in range(runs))


def timed_cold(cmd: list[str], runs: int, cwd: Path, tables: Path) -> float:
    """Like :func:`timed`, each run starting from a copy of the ``tables`` cache dir."""
    samples = []
    for i in range(runs):
        cache = cwd / f"cache-cold-{i}"
        shutil.copytree(tables, cache)
        samples.append(_run(cmd, cwd, cache))
        shutil.rmtree(cache)
    return statistics.median(samples)


def tables_only_cache(root: Path, planpolicy: str) -> Path:
    """A cache dir holding the CEL parse tables and only unrelated check results."""
    primer = root / "primer"
    primer.mkdir()
    text = (REPO / "plan_types" / "renewal_defense.yaml").read_text()
    # the same checks on different text: no expression of the benchmark is cached
    text = text.replace("account.", "account .").replace("signals.", "signals .")
    (primer / "primer.yaml").write_text(text)
    cache = root / "cache-tables"
    _run([planpolicy, "lint", str(REPO / "policies"), str(primer)], root, cache)
    return cache


def byte_compile() -> None:
    """Write planpolicy's bytecode caches (what a normal install already has)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("planpolicy")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)


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
    byte_compile()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policies, plan_types = generate(root, args.files)
        one = plan_types / "plan_type_0000.yaml"
        tables = tables_only_cache(root, planpolicy)
        warm = root / "cache-warm"
        many = [planpolicy, "lint", str(policies), str(plan_types)]
        single = [planpolicy, "lint", str(policies), str(one)]
        many_runs = max(args.runs // 2, 3)
        many_cold = timed_cold(many, many_runs, root, tables)
        _run(many, root, warm)  # fills the warm cache
        many_warm = timed(many, many_runs, root, warm)
        many_yl = timed([yamllint, str(plan_types)], max(args.runs // 2, 2), root)
        one_cold = timed_cold(single, args.runs * 2, root, tables)
        one_warm = timed(single, args.runs * 2, root, warm)
        one_yl = timed([yamllint, str(one)], args.runs * 2, root)
    print(f"{'case':<34}{'cold cache':>12}{'warm cache':>12}{'yamllint':>12}{'ratio':>14}")
    for label, cold, hot, yl in (
        (f"{args.files} plan-type files", many_cold, many_warm, many_yl),
        ("one file (+4 policy files)", one_cold, one_warm, one_yl),
    ):
        ratios = f"{cold / yl:.2f} / {hot / yl:.2f}"
        print(f"{label:<34}{cold:>11.3f}s{hot:>11.3f}s{yl:>11.3f}s{ratios:>14}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(
        f"target: {args.files} files under 2 s -> cold {verdict(many_cold < 2)}, "
        f"warm {verdict(many_warm < 2)}; one file within 1.5x of yamllint -> "
        f"cold {verdict(one_cold <= 1.5 * one_yl)}, warm {verdict(one_warm <= 1.5 * one_yl)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
