"""Lay out the Lambda code asset: the project's packages and its policy bundle.

Both functions share one asset, a directory that becomes ``/var/task``::

    planpolicy/      the engine (src/planpolicy)
    orchestrator/    the service (src/orchestrator, with the page's static files)
    policies/        the bundle's policy documents
    plan_types/      its plan types

Lambda starts a handler with ``/var/task`` as the working directory, so the
functions name the bundle with the relative paths ``policies`` and
``plan_types``. Third-party packages are not staged here: they come from the
dependency layer (:mod:`infra.layer`), which needs no Docker and changes far
less often than the code.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

__all__ = ["BUNDLE_DIRS", "PACKAGES", "ROOT", "stage_code"]

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository root."""
PACKAGES: Final = ("planpolicy", "orchestrator")
"""Packages under ``src/`` that the functions import."""
BUNDLE_DIRS: Final = ("policies", "plan_types")
"""Policy bundle directories, relative to the root and to ``/var/task``."""

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


def stage_code(target: Path, *, root: Path = ROOT) -> Path:
    """Copy the packages and the policy bundle into ``target`` (emptied first); return it."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for package in PACKAGES:
        source = root / "src" / package
        if not (source / "__init__.py").is_file():
            raise FileNotFoundError(f"package `{package}` not found under {root / 'src'}")
        shutil.copytree(source, target / package, ignore=_IGNORE)
    for directory in BUNDLE_DIRS:
        source = root / directory
        if not source.is_dir():
            raise FileNotFoundError(f"policy directory `{directory}` not found under {root}")
        shutil.copytree(source, target / directory, ignore=_IGNORE)
    return target
