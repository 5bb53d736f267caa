"""``planpolicy bundle [PATH ...]``: compile and summarise a policy bundle."""

from __future__ import annotations

import argparse
import json
import sys

from planpolicy.commands.lint import DEFAULT_PATHS

NAME = "bundle"
HELP = "compile policy files and print a summary of the bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from planpolicy.compiler import compile_bundle
    from planpolicy.lint.formats import format_text

    result = compile_bundle(args.paths or list(DEFAULT_PATHS))
    bundle = result.bundle
    if bundle is None:
        sys.stderr.write(format_text(result.diagnostics, files=len(result.documents)))
        return 1
    if args.format == "json":
        summary = {
            "digest": bundle.digest,
            "documents": bundle.versions(),
            "risk_levels": list(bundle.risk.levels),
            "plan_types": {
                name: {
                    "version": pt.version,
                    "lifecycle": pt.lifecycle,
                    "max_duration_days": pt.max_duration.days,
                    "steps": [
                        {
                            "action_type": s,
                            "risk": pt.steps[s].risk,
                            "human_touch": pt.steps[s].human_touch,
                            "after": list(pt.steps[s].after),
                            "retry_limit": pt.steps[s].retry.limit,
                            "on_exhausted": pt.steps[s].retry.on_exhausted,
                        }
                        for s in pt.step_order
                    ],
                }
                for name, pt in bundle.plan_types.items()
            },
        }
        print(json.dumps(summary, indent=2))
        return 0
    print(f"policy bundle {bundle.digest[:19]}…  ({len(bundle.documents)} documents)")
    for info in bundle.documents:
        print(f"  {info.kind:<16} {info.name:<20} v{info.version}  {info.file}")
    print(
        f"risk levels: {' < '.join(bundle.risk.levels)}  (human touch from {bundle.risk.human_touch_from})"
    )
    for lc in bundle.lifecycles.values():
        print(
            f"lifecycle {lc.name} v{lc.version}: initial {lc.initial}, terminal {', '.join(sorted(lc.terminal))}"
        )
        for t in lc.transitions:
            guards = f"  [{', '.join(sorted(t.guards))}]" if t.guards else ""
            print(f"  {t.trigger:<12} {' | '.join(t.sources):<32} -> {t.dest}{guards}")
    for pt in bundle.plan_types.values():
        print(
            f"plan type {pt.name} v{pt.version}: max {pt.max_duration.days} days, lifecycle {pt.lifecycle}"
        )
        for name in pt.step_order:
            step = pt.steps[name]
            flags = []
            if step.human_touch:
                flags.append("human touch")
            if step.when is not None:
                flags.append(f"when {step.when.expr.source.strip()}")
            if step.after:
                flags.append(f"after {', '.join(step.after)}")
            retry = step.retry
            print(
                f"  {name:<26} {step.risk:<7} retries {retry.limit} then {retry.on_exhausted}"
                + (f"; {'; '.join(flags)}" if flags else "")
            )
        print(f"  objective ({pt.objective_mode}): " + "; ".join(c.id for c in pt.objective))
    return 0
