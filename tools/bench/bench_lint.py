"""Benchmark: `planpolicy lint` against `yamllint` on the same files, whole process, cold.

Generates 1,000 plan-type files (variants of the bundled RENEWAL_DEFENSE) next
to the bundled policies, then times, in the same run:

- `planpolicy lint` over the 1,000 files and the policies (target: under 2 s);
- `yamllint` over the same files;
- both on one plan-type file and the four policy files it needs (target:
  planpolicy within 1.5x of yamllint on the same files); yamllint on the
  plan-type file alone is shown too, as a stricter reference.

Every run is a fresh process. planpolicy is timed in three states of its cache
directory (``PLANPOLICY_CACHE_DIR``, private to the benchmark):

- cold cache: the file holds the CEL parse tables but no check result for
  these expressions (as after editing every file);
- warm cache: a previous run checked the same expressions (files unchanged);
- no cache: an empty directory (the first run on a fresh machine or CI
  runner, which also builds the parse tables).

``--instructions`` also counts the instructions of each one-file run with
valgrind (``callgrind``), a figure that does not depend on the machine's load.

Each figure is the median of several whole-process runs. planpolicy's modules
are byte-compiled first, as ``pip install`` does for yamllint's: with
``PYTHONDONTWRITEBYTECODE`` set, an editable install would otherwise compile
them from source in every process (~0.15 s).

    .venv/bin/python tools/bench/bench_lint.py [--files 1000] [--runs 5] [--instructions]
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
        text = text.replace("maxDurationDays: 120", f"maxDurationDays: {90 + i % 90}")
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


def timed_fresh(cmd: list[str], runs: int, cwd: Path) -> float:
    """Like :func:`timed`, each run starting from an empty cache dir."""
    samples = []
    for i in range(runs):
        cache = cwd / f"cache-empty-{i}"
        samples.append(_run(cmd, cwd, cache))
        shutil.rmtree(cache, ignore_errors=True)
    return statistics.median(samples)


def instructions(cmd: list[str], cwd: Path, cache: Path | None) -> int | None:
    """Instructions executed by ``cmd`` (valgrind callgrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = dict(os.environ)
    if cache is not None:
        env["PLANPOLICY_CACHE_DIR"] = str(cache)
    out = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    return None


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
    parser.add_argument(
        "--instructions", action="store_true", help="also count one-file instructions (valgrind)"
    )
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
        single_yl = [yamllint, str(policies), str(one)]
        many_runs = max(args.runs // 2, 3)
        many_cold = timed_cold(many, many_runs, root, tables)
        _run(many, root, warm)  # fills the warm cache
        many_warm = timed(many, many_runs, root, warm)
        many_fresh = timed_fresh(many, max(args.runs // 2, 2), root)
        many_yl = timed([yamllint, str(policies), str(plan_types)], max(args.runs // 2, 2), root)
        one_cold = timed_cold(single, args.runs * 2, root, tables)
        one_warm = timed(single, args.runs * 2, root, warm)
        one_fresh = timed_fresh(single, args.runs * 2, root)
        one_yl = timed(single_yl, args.runs * 2, root)
        one_yl_alone = timed([yamllint, str(one)], args.runs * 2, root)
        counts: dict[str, int | None] = {}
        if args.instructions:
            cold_cache = root / "cache-count"
            shutil.copytree(tables, cold_cache)
            counts["planpolicy, cold cache"] = instructions(single, root, cold_cache)
            counts["planpolicy, warm cache"] = instructions(single, root, warm)
            counts["planpolicy, no cache"] = instructions(single, root, root / "cache-count-0")
            counts["yamllint, same 5 files"] = instructions(single_yl, root, None)
            counts["yamllint, plan-type file only"] = instructions([yamllint, str(one)], root, None)
    header = ("cold cache", "warm cache", "no cache", "yamllint")
    print(f"{'case':<34}" + "".join(f"{h:>12}" for h in header) + f"{'ratios c/w/n':>22}")
    for label, cold, hot, fresh, yl in (
        (f"{args.files} plan-type files", many_cold, many_warm, many_fresh, many_yl),
        ("one file (+4 policy files)", one_cold, one_warm, one_fresh, one_yl),
    ):
        ratios = f"{cold / yl:.2f} / {hot / yl:.2f} / {fresh / yl:.2f}"
        figures = "".join(f"{v:>11.3f}s" for v in (cold, hot, fresh, yl))
        print(f"{label:<34}{figures}{ratios:>22}")
    print(
        f"yamllint on the plan-type file alone: {one_yl_alone:.3f}s "
        f"(ratios {one_cold / one_yl_alone:.2f} / {one_warm / one_yl_alone:.2f} / "
        f"{one_fresh / one_yl_alone:.2f})"
    )
    if counts:
        base = counts.get("yamllint, same 5 files")
        print("one file, instructions (valgrind):")
        for label, value in counts.items():
            shown = "n/a" if value is None else f"{value / 1e6:,.0f} M"
            ratio = f"  ({value / base:.2f}x)" if value and base else ""
            print(f"  {label:<32}{shown:>10}{ratio}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(
        f"target: {args.files} files under 2 s -> cold {verdict(many_cold < 2)}, "
        f"warm {verdict(many_warm < 2)}, no cache {verdict(many_fresh < 2)}; "
        f"one file within 1.5x of yamllint on the same files -> "
        f"cold {verdict(one_cold <= 1.5 * one_yl)}, warm {verdict(one_warm <= 1.5 * one_yl)}, "
        f"no cache {verdict(one_fresh <= 1.5 * one_yl)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
