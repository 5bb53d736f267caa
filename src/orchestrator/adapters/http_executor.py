"""ActionExecutor over HTTP: the execution service's intents API (stdlib only).

The wire protocol, relative to a configurable base URL:

``POST {base}/intents``
    Body: the intent as JSON (:meth:`ActionIntent.as_dict`), header
    ``Idempotency-Key: plan_id:step_id:attempt``. The service executes an
    intent at most once per key and answers every repeat with what it knows.
``GET {base}/intents/{key}``
    The outcome under ``key`` (the key is percent-encoded); 404 when the
    service never saw it.

Both answer ``{"status": "SUCCEEDED" | "FAILED" | "PENDING", "error": ...,
"detail": {...}}`` (``200``, ``201`` or ``202``). Mapping to the port:

=================================  ============================================
answer                             result
=================================  ============================================
``SUCCEEDED`` / ``FAILED``         a definite outcome (``error`` kept on failure)
``PENDING`` (or 202 without body)  accepted, not finished: look it up later
GET 404                            ``UNKNOWN``: the service never saw the key
timeout, connection error, 5xx,    :class:`ExecutorUnavailable`: ambiguous, the
408/409/425/429, 401/403,          orchestrator reconciles with the same key
unreadable body
other 4xx on POST                  ``FAILED``: the service refused the intent
                                   (the action did not run)
=================================  ============================================

A 409 (the key was seen with another body) and 401/403 (credentials) are not
the action's fault, so they never consume a retry.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from orchestrator.execution import (
    ActionIntent,
    ExecutionResult,
    ExecutionStatus,
    ExecutorUnavailable,
)

__all__ = ["DEFAULT_TIMEOUT", "HttpExecutor"]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds to wait for the service before the outcome counts as ambiguous."""

_MAX_BODY: Final = 1 << 20
_STATUS: Final = {
    "SUCCEEDED": ExecutionStatus.SUCCEEDED,
    "SUCCESS": ExecutionStatus.SUCCEEDED,
    "COMPLETED": ExecutionStatus.SUCCEEDED,
    "FAILED": ExecutionStatus.FAILED,
    "FAILURE": ExecutionStatus.FAILED,
    "REJECTED": ExecutionStatus.FAILED,
    "PENDING": ExecutionStatus.PENDING,
    "ACCEPTED": ExecutionStatus.PENDING,
    "QUEUED": ExecutionStatus.PENDING,
    "RUNNING": ExecutionStatus.PENDING,
    "IN_PROGRESS": ExecutionStatus.PENDING,
}
_NOT_THE_ACTIONS_FAULT: Final = frozenset({401, 403, 408, 409, 425, 429})


class HttpExecutor:
    """Submits intents to ``{base_url}/intents`` and looks outcomes up by key."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"executor URL `{base_url}` must be an http:// or https:// URL")
        if timeout <= 0:
            raise ValueError("the executor timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": "application/json", **(headers or {})}

    def submit(self, intent: ActionIntent) -> ExecutionResult:
        """POST the intent with its ``Idempotency-Key``; the service's answer."""
        body = json.dumps(intent.as_dict(), separators=(",", ":"), sort_keys=True).encode()
        request = urllib.request.Request(
            f"{self.base_url}/intents",
            data=body,
            method="POST",
            headers={
                **self._headers,
                "Content-Type": "application/json",
                "Idempotency-Key": intent.key,
            },
        )
        status, payload = self._send(request, intent.key)
        if 400 <= status < 500:
            # The service refused the intent outright: it did not run. A definite failure.
            return ExecutionResult(
                ExecutionStatus.FAILED,
                {"http_status": status},
                f"the execution service refused the intent ({status}): {_message(payload)}",
            )
        return self._result(status, payload, intent.key)

    def lookup(self, key: str) -> ExecutionResult:
        """GET the outcome under ``key``; ``UNKNOWN`` on 404."""
        request = urllib.request.Request(
            f"{self.base_url}/intents/{urllib.parse.quote(key, safe='')}",
            method="GET",
            headers=self._headers,
        )
        status, payload = self._send(request, key)
        if status == 404:
            return ExecutionResult(ExecutionStatus.UNKNOWN)
        if 400 <= status < 500:
            raise ExecutorUnavailable(f"looking up `{key}`: unexpected HTTP {status}")
        return self._result(status, payload, key)

    # -- helpers ---------------------------------------------------------------

    def _send(self, request: urllib.request.Request, key: str) -> tuple[int, bytes]:
        """The HTTP status and body; transport problems and 5xx become ExecutorUnavailable."""
        what = f"{request.get_method()} {request.full_url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), response.read(_MAX_BODY)
        except urllib.error.HTTPError as exc:
            with exc:  # closes the response the error carries
                status = int(exc.code)
                payload = exc.read(_MAX_BODY) if exc.fp is not None else b""
            if status >= 500 or status in _NOT_THE_ACTIONS_FAULT:
                raise ExecutorUnavailable(f"{what} for `{key}`: HTTP {status}") from exc
            return status, payload
        except TimeoutError as exc:
            raise ExecutorUnavailable(f"{what} for `{key}`: timed out") from exc
        except urllib.error.URLError as exc:
            raise ExecutorUnavailable(f"{what} for `{key}`: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ExecutorUnavailable(f"{what} for `{key}`: {exc}") from exc

    @staticmethod
    def _result(status: int, payload: bytes, key: str) -> ExecutionResult:
        if status == 202 and not payload.strip():
            return ExecutionResult(ExecutionStatus.PENDING)
        try:
            data: Any = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExecutorUnavailable(f"unreadable answer for `{key}` (HTTP {status})") from exc
        if not isinstance(data, dict):
            raise ExecutorUnavailable(f"unreadable answer for `{key}`: not a JSON object")
        raw = str(data.get("status", "")).strip().upper()
        mapped = _STATUS.get(raw)
        if mapped is None:
            raise ExecutorUnavailable(f"unknown status `{raw[:40]}` for `{key}`")
        detail = data.get("detail")
        error = data.get("error")
        return ExecutionResult(
            mapped,
            dict(detail) if isinstance(detail, dict) else {},
            str(error)[:2000] if error and mapped == ExecutionStatus.FAILED else None,
        )


def _message(payload: bytes) -> str:
    """The error text of a refusal: ``error``/``message`` of a JSON body, else the text."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload[:200].decode("utf-8", "replace").strip() or "no detail"
    if isinstance(data, dict):
        for name in ("error", "message", "detail"):
            if isinstance(data.get(name), str):
                return str(data[name])[:200]
    return "no detail"
