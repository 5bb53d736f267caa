"""Build the Lambda dependency layer with pip alone (no Docker).

``python -m infra.layer [--out build/lambda-deps]`` installs the project's
runtime dependencies (``[project] dependencies`` of pyproject.toml, less the
ones a Lambda function never imports) as binary wheels for the functions'
platform into ``OUT/python``, the layout Lambda expects of a Python layer
(it ends up on ``sys.path`` as ``/opt/python``). ``make lambda-deps`` runs it;
``cdk deploy`` refuses to package a stack whose layer was not built.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Final

__all__ = [
    "LAMBDA_ARCHITECTURE",
    "LAMBDA_PLATFORMS",
    "LAMBDA_PYTHON",
    "build_layer",
    "layer_requirements",
    "placeholder_layer",
]

LAMBDA_PYTHON: Final = "3.11"
"""The functions' Python: the version the project is built and tested on."""
LAMBDA_ARCHITECTURE: Final = "arm64"
"""Graviton: cheaper per GB-second; every dependency ships aarch64 wheels."""
LAMBDA_PLATFORMS: Final = ("manylinux2014_aarch64", "manylinux_2_26_aarch64")
"""Wheel platform tags for :data:`LAMBDA_ARCHITECTURE` on the python3.11 runtime.

That runtime is Amazon Linux 2 (glibc 2.26): wheels up to ``manylinux_2_26`` run
there (google-re2, which cel-python needs, ships ``manylinux_2_26`` only).
"""
NOT_ON_LAMBDA: Final = frozenset({"uvicorn"})
"""Runtime dependencies the functions never import (uvicorn serves the API locally)."""

_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def layer_requirements(pyproject: Path = _ROOT / "pyproject.toml") -> list[str]:
    """The runtime requirement strings that go into the layer."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = []
    for requirement in project["dependencies"]:
        match = _NAME.match(requirement)
        name = match.group(0).lower() if match else requirement
        if name not in NOT_ON_LAMBDA:
            wanted.append(requirement)
    return wanted


def build_layer(out: Path, *, python: str = sys.executable) -> Path:
    """Install the layer's packages into ``out/python`` (emptied first); return ``out``."""
    target = out / "python"
    if out.exists():
        shutil.rmtree(out)
    target.mkdir(parents=True)
    command = [
        python, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(target),
        *(part for tag in LAMBDA_PLATFORMS for part in ("--platform", tag)),
        "--implementation", "cp",
        "--python-version", LAMBDA_PYTHON,
        "--only-binary=:all:",
        *layer_requirements(),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return out


def placeholder_layer(out: Path) -> Path:
    """An empty layer for synthesizing without the real one (``synth_only``)."""
    target = out / "python"
    target.mkdir(parents=True, exist_ok=True)
    (out / "README.txt").write_text(
        "Placeholder: build the dependency layer with `make lambda-deps` before deploying.\n",
        encoding="utf-8",
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: build the layer."""
    parser = argparse.ArgumentParser(prog="python -m infra.layer", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/lambda-deps"))
    args = parser.parse_args(argv)
    out = build_layer(args.out)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"dependency layer in {out} ({size / 1e6:.1f} MB unzipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
