"""Run a scenario split over processes in a fresh Python process, for ``test_split``.

A run is split only from a process with no other threads (a forked child
would inherit their locks), and a test session has some (session-scoped
servers). So the split runs of the tests happen here, in a process of its
own started by the test:

    python split_runner.py REQUEST.json RESULT.pickle

The request names the scenario, the policies, the modes and numbers of
processes, and optionally a tick at which every worker kills itself. The
result holds, per number of processes, what the test compares with the run
in one process, the shares each split had, and the workers' process ids.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def stripped(result: Any) -> dict[str, Any]:
    """Every field of a ``RunResult`` but the scenario and the seconds it took."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    fields.pop("scenario")
    fields["stats"] = dataclasses.replace(result.stats, seconds=0.0)
    return fields


def report(result: Any) -> str:
    from planpolicy import simreport

    return simreport.run_json(
        dataclasses.replace(result, stats=dataclasses.replace(result.stats, seconds=0.0))
    )


def main(request_path: str, out_path: str) -> int:
    from orchestrator.scheduler import Scheduler
    from planpolicy import load_bundle, simsplit, simulate
    from planpolicy.scenario import load_scenario
    from planpolicy.simulate import SimOptions

    request = json.loads(Path(request_path).read_text())
    bundle = load_bundle(request["policies"])
    scenario = load_scenario(request["scenario"], bundle)
    assert threading.active_count() == 1, "the runner must have no other threads"

    shares: list[int] = []
    overdue: list[bool] = []  # per part of each split run: whether it was dropped for one process
    real_groups = simsplit.run_groups

    def spy(work: Any) -> Any:
        shares.append(len(work))
        results = real_groups(work)
        overdue.extend(part.overdue for part in results if hasattr(part, "overdue"))
        return results

    simsplit.run_groups = spy  # type: ignore[assignment]
    parent = os.getpid()
    kill_at = request.get("kill_worker_at_tick")
    if kill_at is not None:
        original = Scheduler.tick
        ticks = [0]
        marks = Path(request["marks"])

        def tick(self: Scheduler, now: Any, **kw: Any) -> Any:
            ticks[0] += 1
            if os.getpid() != parent and ticks[0] == kill_at:
                (marks / f"killed-{os.getpid()}").touch()
                os.kill(os.getpid(), signal.SIGKILL)  # midway through its share
            return original(self, now, **kw)

        Scheduler.tick = tick  # type: ignore[method-assign]

    out: dict[str, Any] = {}
    for jobs in request["jobs"]:
        shares.clear()
        overdue.clear()
        options = SimOptions(jobs=jobs, seed=request.get("seed", 0))
        mode = request.get("mode", "run")
        if mode == "run":
            result = simulate.run(scenario, bundle, options)
            got: Any = {"result": stripped(result), "report": report(result)}
        elif mode == "monte_carlo":
            spread = simulate.monte_carlo(scenario, bundle, request["runs"], options)
            got = {"result": (spread.plans, spread.overall, spread.expectations, spread.failures)}
        else:
            compared = simulate.compare(scenario, bundle, bundle, options)
            got = {
                "result": (stripped(compared.left), stripped(compared.right)),
                "divergences": compared.divergences,
            }
        got["shares"] = list(shares)
        got["overdue"] = list(overdue)
        out[str(jobs)] = got
    Path(out_path).write_bytes(pickle.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
