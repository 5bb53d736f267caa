"""``planpolicy schema``: write or verify the JSON Schemas in ``schemas/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "schema"
HELP = "write the JSON Schemas generated from the models, or check the checked-in copies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="schemas", help="schema directory (default: schemas/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="fail when the files differ from the models"
    )
    mode.add_argument("--write", action="store_true", help="regenerate the files (default)")


def run(args: argparse.Namespace) -> int:
    from planpolicy import schemagen

    directory = Path(args.dir)
    if args.check:
        drift = schemagen.check(directory)
        for path in drift:
            print(f"{path}: out of date, run `planpolicy schema --write`", file=sys.stderr)
        if not drift:
            print(f"{len(schemagen.generate())} schemas in {directory}/ match the models")
        return 1 if drift else 0
    changed = schemagen.write(directory)
    print(
        f"wrote {len(changed)} schema file(s) to {directory}/"
        if changed
        else "schemas are up to date"
    )
    return 0
