"""The HTTP contract around the commands: ETag/If-Match, Idempotency-Key, tenant isolation,
and problem documents for every refusal."""

from __future__ import annotations

import uuid

import pytest
from tests.api.harness import AE, DIRECTOR, MANAGER, ApiClient, assert_problem

# --- If-Match ----------------------------------------------------------------------------


def test_if_match_with_the_current_etag_succeeds(api: ApiClient) -> None:
    plan = api.active()
    etag = api.get(f"/v1/plans/{plan['plan_id']}").headers["etag"]
    response = api.post(
        f"/v1/plans/{plan['plan_id']}/pause",
        {"reason": "hold"},
        "ae1",
        AE,
        headers={"If-Match": etag},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{int(etag.strip(chr(34))) + 1}"'


@pytest.mark.parametrize(
    "if_match", ['"1"', 'W/"{v}"', '"1", "2"', "garbage"], ids=["stale", "weak", "list", "garbage"]
)
def test_if_match_that_does_not_name_the_current_version_is_412(
    api: ApiClient, if_match: str
) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    header = if_match.replace("{v}", str(plan["version"]))
    response = api.post(
        f"/v1/plans/{pid}/pause", {"reason": "hold"}, "ae1", AE, headers={"If-Match": header}
    )
    problem = assert_problem(response, 412, "precondition-failed")
    assert problem["current_version"] == plan["version"]
    assert api.get(f"/v1/plans/{pid}").json()["status"] == "ACTIVE"


def test_if_match_lists_and_star_match(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    listed = f'"1", "{plan["version"]}"'
    response = api.post(
        f"/v1/plans/{pid}/pause", {"reason": "a"}, "ae1", AE, headers={"If-Match": listed}
    )
    assert response.status_code == 200, response.text
    response = api.post(
        f"/v1/plans/{pid}/resume", {"reason": "b"}, "mgr", MANAGER, headers={"If-Match": "*"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("trigger", ["approve", "activate", "abort"])
def test_every_command_honours_if_match(api: ApiClient, trigger: str) -> None:
    plan = api.approved() if trigger != "approve" else api.create()
    response = api.post(
        f"/v1/plans/{plan['plan_id']}/{trigger}",
        {"reason": "x"},
        "dir",
        DIRECTOR,
        headers={"If-Match": '"99"'},
    )
    assert_problem(response, 412, "precondition-failed")


def test_step_approval_honours_if_match(api: ApiClient) -> None:
    plan = api.active()
    step = plan["steps"][2]["step_id"]
    path = f"/v1/plans/{plan['plan_id']}/steps/{step}/approve"
    assert_problem(
        api.post(path, {}, "mgr", MANAGER, headers={"If-Match": '"1"'}), 412, "precondition-failed"
    )


# --- Idempotency-Key ---------------------------------------------------------------------


def test_a_retried_command_returns_the_original_result(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post(f"/v1/plans/{pid}/pause", {"reason": "hold"}, "ae1", AE, headers=key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    again = api.post(f"/v1/plans/{pid}/pause", {"reason": "hold"}, "ae1", AE, headers=key)
    assert again.status_code == 200  # not 409: the pause is not applied twice
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    events = [e["event"] for e in api.get(f"/v1/plans/{pid}/ledger").json()["entries"]]
    assert events.count("paused") == 1


def test_a_retried_create_creates_one_plan(api: ApiClient) -> None:
    key = {"Idempotency-Key": "create-" + uuid.uuid4().hex}
    body = {
        "account_id": "acme",
        "plan_type": "RENEWAL_DEFENSE",
        "steps": [{"action_type": "PREP_RENEWAL_BRIEF"}],
    }
    first = api.post("/v1/plans", body, "ae1", AE, headers=key)
    again = api.post("/v1/plans", body, "ae1", AE, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["location"] == first.headers["location"]
    assert len(api.get("/v1/plans").json()["items"]) == 1


def test_a_refusal_is_replayed_too(api: ApiClient) -> None:
    plan = api.create()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/plans/{plan['plan_id']}/approve"
    first = api.post(path, {}, "mgr", MANAGER, headers=key)
    again = api.post(path, {}, "mgr", MANAGER, headers=key)
    assert first.status_code == again.status_code == 403
    assert again.json() == first.json()
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.headers["idempotent-replayed"] == "true"


def test_the_same_key_for_another_request_is_refused(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert api.post(f"/v1/plans/{pid}/pause", {"reason": "a"}, "ae1", AE, headers=key).is_success
    other_body = api.post(f"/v1/plans/{pid}/pause", {"reason": "b"}, "ae1", AE, headers=key)
    assert_problem(other_body, 422, "idempotency-key-reused")
    other_path = api.post(f"/v1/plans/{pid}/resume", {"reason": "a"}, "ae1", AE, headers=key)
    assert_problem(other_path, 422, "idempotency-key-reused")
    other_caller = api.post(f"/v1/plans/{pid}/pause", {"reason": "a"}, "mgr", MANAGER, headers=key)
    assert_problem(other_caller, 422, "idempotency-key-reused")


def test_keys_are_scoped_to_the_tenant(api: ApiClient) -> None:
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    body = {
        "account_id": "acme",
        "plan_type": "RENEWAL_DEFENSE",
        "steps": [{"action_type": "PREP_RENEWAL_BRIEF"}],
    }
    mine = api.post("/v1/plans", body, "ae1", AE, headers=key)
    theirs = api.post("/v1/plans", body, "ae1", AE, headers=key, tenant=api.tenant + "-b")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["tenant_id"] == api.tenant + "-b"
    assert theirs.json()["plan_id"] != mine.json()["plan_id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "é"])
def test_malformed_idempotency_keys_are_refused(api: ApiClient, key: str) -> None:
    response = api.http.post(
        "/v1/plans/p/pause",
        content=b'{"reason": "x"}',
        headers={
            **api.headers("ae1", AE),
            "Content-Type": "application/json",
            "Idempotency-Key": key.encode("utf-8"),  # type: ignore[dict-item]
        },
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["location"] == "header"


# --- tenant isolation --------------------------------------------------------------------


def test_another_tenants_plan_is_indistinguishable_from_a_missing_one(api: ApiClient) -> None:
    plan = api.active()
    pid = plan["plan_id"]
    step = plan["steps"][2]["step_id"]
    other = api.tenant + "-other"
    missing = "no-such-plan"
    calls = [
        ("GET", "/v1/plans/{}", None),
        ("GET", "/v1/plans/{}/ledger", None),
        ("GET", "/v1/plans/{}/check", None),
        ("POST", "/v1/plans/{}/approve", {}),
        ("POST", "/v1/plans/{}/activate", {}),
        ("POST", "/v1/plans/{}/pause", {"reason": "x"}),
        ("POST", "/v1/plans/{}/resume", {"reason": "x"}),
        ("POST", "/v1/plans/{}/abort", {"reason": "x"}),
        ("POST", "/v1/plans/{}/steps/" + step + "/approve", {}),
    ]
    for method, template, body in calls:
        answers = []
        for plan_id in (pid, missing):
            path = template.format(plan_id)
            if method == "GET":
                response = api.get(path, "dir", DIRECTOR, tenant=other)
            else:
                response = api.post(path, body, "dir", DIRECTOR, tenant=other)
            problem = assert_problem(response, 404, "not-found")
            answers.append(
                (problem["title"], problem["detail"].replace(plan_id, "ID"), sorted(problem))
            )
        assert answers[0] == answers[1], (method, template)
    assert api.get("/v1/plans", "dir", DIRECTOR, tenant=other).json()["items"] == []
    untouched = api.get(f"/v1/plans/{pid}").json()
    assert (untouched["status"], untouched["version"]) == ("ACTIVE", plan["version"])


# --- problems ---------------------------------------------------------------------------


def test_every_problem_type_is_described(api: ApiClient) -> None:
    response = api.http.get("/problems/invalid-transition")
    assert response.status_code == 200
    described = response.json()
    assert described["type"] == "/problems/invalid-transition"
    assert described["status"] == 409
    assert_problem(api.http.get("/problems/no-such-problem"), 404, "not-found")


def test_unknown_routes_and_methods_are_problems(api: ApiClient) -> None:
    assert_problem(api.get("/v1/nothing-here"), 404, "not-found")
    response = api.http.delete("/v1/plans", headers=api.headers("dir", DIRECTOR))
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"


def test_bodies_must_be_json_and_small(api: ApiClient) -> None:
    headers = api.headers("ae1", AE)
    response = api.http.post(
        "/v1/plans", content=b"account_id=acme", headers={**headers, "Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported-media-type")
    huge = b'{"reason": "' + b"x" * 300_000 + b'"}'
    response = api.http.post(
        "/v1/plans/p/pause", content=huge, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


def test_responses_carry_security_headers(api: ApiClient) -> None:
    response = api.get("/v1/plans")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page = api.http.get("/ui/")
    assert page.status_code == 200 and "<title>Active Plans" in page.text
    assert api.http.get("/", follow_redirects=False).headers["location"] == "ui/"


def test_the_page_loads_nothing_from_outside(api: ApiClient) -> None:
    from orchestrator.api.app import STATIC_DIR

    files = sorted(p.name for p in STATIC_DIR.iterdir())
    assert files == ["app.css", "app.js", "index.html"]
    for name in files:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
        served = api.http.get(f"/ui/{name}")
        assert served.status_code == 200 and served.text == text
    assert "innerHTML" not in (STATIC_DIR / "app.js").read_text(encoding="utf-8")
