"""Session-wide fixtures shared by every test package.

``moto_server`` starts a DynamoDB-compatible server (moto, serving one request
at a time: see tests/support/serial_moto.py) once per session and points boto3
at it through the standard environment variables; ``dynamodb_endpoint`` resets
its state before each test that uses it.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start_moto(timeout: float = 20.0) -> tuple[subprocess.Popen[str], str]:
    """Start tests/support/serial_moto.py on a free loopback port; wait until it answers."""
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "serial_moto.py"), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT="):
        stop_moto(proc)
        raise RuntimeError(f"moto server did not start: {line!r}")
    endpoint = f"http://127.0.0.1:{int(line.strip().split('=', 1)[1])}"
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as response:
                if response.status == 200:
                    return proc, endpoint
        except OSError:
            if time.monotonic() > deadline:
                stop_moto(proc)
                raise
            time.sleep(0.05)


def stop_moto(proc: subprocess.Popen[str]) -> None:
    """Stop the server and release its pipe."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def reset_moto(endpoint: str) -> None:
    """Drop every table and item on the server."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint of a session-wide moto server; boto3 in this and child processes uses it."""
    proc, endpoint = start_moto()
    patch = pytest.MonkeyPatch()
    for name, value in {**_AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        patch.delenv(name, raising=False)
    try:
        yield endpoint
    finally:
        patch.undo()
        stop_moto(proc)


@pytest.fixture
def dynamodb_endpoint(moto_server: str) -> str:
    """The moto endpoint, with all state reset before the test."""
    reset_moto(moto_server)
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == moto_server
    return moto_server
