"""Invoke a Lambda handler as the Lambda runtime would, recording its DynamoDB calls.

Run by tests/deploy/test_handlers.py as ``python -S lambda_runner.py SPEC OUT``
with the working directory set to the synthesized code asset (``/var/task``
on Lambda) and ``PYTHONPATH`` = the asset, then the dependency packages (the
layer's ``/opt/python``); ``-S`` keeps the test environment's site-packages
(and its editable install of the project) out, so the handler imports the
staged copy of the code exactly as the function would.

``SPEC`` is a JSON file: ``{"handler": "module.function", "events": [...]}``.
``OUT`` receives ``{"results": [...], "calls": [...], "modules": {...}}``:
each handler result, every DynamoDB request (operation and parameters, as
botocore saw them) and the files the project's packages were imported from.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any


class FakeContext:
    """The attributes of Lambda's context object that handlers read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 1024

    def get_remaining_time_in_millis(self) -> int:
        """Plenty: the tests do not exercise the deadline."""
        return 200_000


def main(spec_path: str, out_path: str) -> int:
    """Run every event of the spec through the handler; write what happened."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)

    import boto3

    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append(
            {"operation": model.name, "params": json.loads(json.dumps(params, default=repr))}
        )

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.dynamodb", record)

    module_name, _, function_name = spec["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    results = [handler(event, FakeContext(function_name)) for event in spec["events"]]
    modules = {
        name: getattr(sys.modules.get(name), "__file__", None)
        for name in ("planpolicy", "orchestrator")
    }
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump({"results": results, "calls": calls, "modules": modules}, handle, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
