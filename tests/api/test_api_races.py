"""Races: conflicting mutations of one plan sent at the same moment; exactly one wins.

Requests are released together by a barrier from separate threads, each with
its own connection, against the real server (which serves them concurrently
from its thread pool over one SQLite store).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import httpx
from tests.api.harness import AE, DIRECTOR, MANAGER, ApiClient


def _race(
    api: ApiClient, requests: Sequence[tuple[str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    """POST every (path, body, headers) at once; the responses in the same order."""
    barrier = threading.Barrier(len(requests))
    results: list[httpx.Response | None] = [None] * len(requests)

    def send(index: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            client.get("/healthz")  # connect before the barrier
            barrier.wait()
            results[index] = client.post(path, json=body, headers=headers)

    threads = [
        threading.Thread(target=send, args=(i, *request)) for i, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_pause_and_abort_with_the_same_if_match_one_wins(api: ApiClient) -> None:
    for _ in range(6):
        plan = api.active()
        pid = plan["plan_id"]
        etag = f'"{plan["version"]}"'
        pause = (
            f"/v1/plans/{pid}/pause",
            {"reason": "hold"},
            api.headers("ae1", AE, **{"If-Match": etag}),
        )
        abort = (
            f"/v1/plans/{pid}/abort",
            {"reason": "lost"},
            api.headers("dir", DIRECTOR, **{"If-Match": etag}),
        )
        responses = _race(api, [pause, abort])
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and statuses[1] in (409, 412), [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200).json()
        final = api.get(f"/v1/plans/{pid}").json()
        assert final["status"] == winner["status"]
        assert final["version"] == plan["version"] + 1
        events = [e["event"] for e in api.get(f"/v1/plans/{pid}/ledger").json()["entries"]]
        assert events.count("paused") + events.count("aborted") == 1
        api.post(f"/v1/plans/{pid}/abort", {"reason": "cleanup"}, "dir", DIRECTOR)


def test_two_pauses_without_if_match_one_wins(api: ApiClient) -> None:
    for _ in range(4):
        plan = api.active()
        pid = plan["plan_id"]
        responses = _race(
            api,
            [
                (f"/v1/plans/{pid}/pause", {"reason": "a"}, api.headers("ae1", AE)),
                (f"/v1/plans/{pid}/pause", {"reason": "b"}, api.headers("mgr", MANAGER)),
            ],
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409).json()
        assert loser["type"] in ("/problems/invalid-transition", "/problems/version-conflict")
        events = [e["event"] for e in api.get(f"/v1/plans/{pid}/ledger").json()["entries"]]
        assert events.count("paused") == 1
        api.post(f"/v1/plans/{pid}/abort", {"reason": "cleanup"}, "dir", DIRECTOR)


def test_two_plans_of_one_account_activating_at_once_one_wins(api: ApiClient) -> None:
    first = api.approved("globex")
    second = api.approved("globex")
    responses = _race(
        api,
        [
            (f"/v1/plans/{first['plan_id']}/activate", {}, api.headers("dir", DIRECTOR)),
            (f"/v1/plans/{second['plan_id']}/activate", {}, api.headers("dir2", DIRECTOR)),
        ],
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert "CONFLICT_ACTIVE_PLAN" in {r["code"] for r in loser["reasons"]}
    active = api.get("/v1/plans", params={"status": "ACTIVE", "account_id": "globex"}).json()
    assert len(active["items"]) == 1


def test_the_same_idempotency_key_sent_twice_at_once_acts_once(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    headers = api.headers("ae1", AE, **{"Idempotency-Key": f"race-{pid}"})
    responses = _race(
        api,
        [(f"/v1/plans/{pid}/pause", {"reason": "hold"}, headers)] * 2,
    )
    statuses = sorted(r.status_code for r in responses)
    # Either the second waited for nothing and replayed, or it saw the first in flight.
    assert statuses in ([200, 200], [200, 409]), [r.text for r in responses]
    events = [e["event"] for e in api.get(f"/v1/plans/{pid}/ledger").json()["entries"]]
    assert events.count("paused") == 1
