"""Create, list and read plans; every read is confined to the caller's tenant."""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.harness import AE, ALL_STEPS, DIRECTOR, MEDIUM_STEPS, ApiClient, assert_problem


def test_create_stores_a_draft_proposed_by_the_caller(api: ApiClient) -> None:
    response = api.post(
        "/v1/plans",
        {
            "account_id": "acme",
            "plan_type": "RENEWAL_DEFENSE",
            "objective": "renew acme",
            "steps": ALL_STEPS,
            "reason": "two P1 tickets",
        },
        "ae1",
        AE,
    )
    assert response.status_code == 201, response.text
    plan = response.json()
    assert response.headers["location"] == f"/v1/plans/{plan['plan_id']}"
    assert response.headers["etag"] == '"1"'
    assert plan["tenant_id"] == api.tenant
    assert (plan["status"], plan["created_by"], plan["owner"], plan["version"]) == (
        "DRAFT",
        "ae1",
        "ae1",
        1,
    )
    assert plan["risk"] == "HIGH"  # the escalation step is HIGH: the plan inherits it
    escalation = plan["steps"][2]
    assert escalation["human_touch"] is True  # defaulted from the plan type
    assert escalation["risk"] == "HIGH"
    assert plan["allowed_triggers"] == ["approve", "abort"]
    assert plan["permitted"] == []  # a proposer may not approve; an AE may not abort
    ledger = api.get(f"/v1/plans/{plan['plan_id']}/ledger").json()
    assert [(e["event"], e["actor"], e["reason"]) for e in ledger["entries"]] == [
        ("created", "ae1", "two P1 tickets")
    ]


def test_create_ignores_no_tenant_from_the_body(api: ApiClient) -> None:
    body = {
        "account_id": "acme",
        "plan_type": "RENEWAL_DEFENSE",
        "steps": MEDIUM_STEPS,
        "tenant_id": "someone-else",
    }
    response = api.post("/v1/plans", body, "ae1", AE)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "tenant_id"
    assert problem["errors"][0]["code"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"plan_type": "RENEWAL_DEFENSE", "steps": MEDIUM_STEPS}, "account_id", "missing"),
        ({"account_id": "acme", "plan_type": "RENEWAL_DEFENSE", "steps": []}, "steps", "too_short"),
        (
            {"account_id": "acme", "plan_type": "NO_SUCH_TYPE", "steps": MEDIUM_STEPS},
            "plan_type",
            "unknown_plan_type",
        ),
        (
            {
                "account_id": "acme",
                "plan_type": "RENEWAL_DEFENSE",
                "steps": [{"action_type": "SEND_GIFT"}],
            },
            "steps.0.action_type",
            "step_type_not_allowed",
        ),
        (
            {
                "account_id": "acme",
                "plan_type": "RENEWAL_DEFENSE",
                "plan_type_version": 99,
                "steps": MEDIUM_STEPS,
            },
            "plan_type_version",
            "plan_type_version_mismatch",
        ),
        (
            {
                "account_id": "acme",
                "plan_type": "RENEWAL_DEFENSE",
                "steps": MEDIUM_STEPS,
                "expires_at": "2030-01-01T00:00:00",
            },
            "expires_at",
            "timezone_aware",
        ),
        (
            {"account_id": "bad id!", "plan_type": "RENEWAL_DEFENSE", "steps": MEDIUM_STEPS},
            "account_id",
            "string_pattern_mismatch",
        ),
        (
            {
                "account_id": "acme",
                "plan_type": "RENEWAL_DEFENSE",
                "steps": [
                    {"action_type": "PREP_RENEWAL_BRIEF", "parameters": {"audience": "\ud800"}}
                ],
            },
            "steps.0.parameters.audience",
            "string_unicode",
        ),
    ],
    ids=[
        "missing",
        "no-steps",
        "plan-type",
        "action-type",
        "version",
        "naive-time",
        "pattern",
        "surrogate",
    ],
)
def test_create_names_each_invalid_field(
    api: ApiClient, body: dict[str, Any], field: str, code: str
) -> None:
    response = api.post("/v1/plans", body, "ae1", AE)
    problem = assert_problem(response, 422, "validation-error")
    fields = {(e["field"], e["location"]) for e in problem["errors"]}
    assert (field, "body") in fields or any(f.startswith(field) for f, _ in fields), problem
    assert any(e["code"] == code or code in e["code"] for e in problem["errors"]), problem
    for error in problem["errors"]:
        assert error["pointer"] == "#/" + error["field"].replace(".", "/")
        assert error["detail"] and not error["detail"][0].isupper()


def test_malformed_json_is_a_validation_error(api: ApiClient) -> None:
    response = api.http.post(
        "/v1/plans",
        content=b'{"account_id": ',
        headers={**api.headers("ae1", AE), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["code"] == "json_invalid"


def test_get_returns_the_plan_with_its_etag_and_honours_if_none_match(api: ApiClient) -> None:
    plan = api.active()
    response = api.get(f"/v1/plans/{plan['plan_id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{plan["version"]}"'
    body = response.json()
    assert body["status"] == "ACTIVE"
    assert body["risk"] == "HIGH"
    assert body["expires_at"]
    gate = body["latest_gate"]
    assert gate["can_activate"] is True and gate["reasons"] == [] and gate["ledger_seq"] >= 1
    again = api.get(
        f"/v1/plans/{plan['plan_id']}", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    stale = api.get(f"/v1/plans/{plan['plan_id']}", headers={"If-None-Match": '"1"'})
    assert stale.status_code == 200


def test_permitted_actions_depend_on_the_callers_roles(api: ApiClient) -> None:
    plan = api.active()
    path = f"/v1/plans/{plan['plan_id']}"
    assert api.get(path, "ae1", AE).json()["permitted"] == ["pause"]  # the owner's right
    assert api.get(path, "other-ae", AE).json()["permitted"] == ["pause"]
    assert api.get(path, "dir", DIRECTOR).json()["permitted"] == ["pause", "abort"]
    assert api.get(path, "nobody").json()["permitted"] == []


def test_list_filters_by_status_account_and_plan_type(api: ApiClient) -> None:
    active = api.active("acme")
    draft = api.create("globex", MEDIUM_STEPS)
    listing = api.get("/v1/plans").json()
    assert {p["plan_id"] for p in listing["items"]} == {active["plan_id"], draft["plan_id"]}
    assert listing["next_cursor"] is None
    only_active = api.get("/v1/plans", params={"status": "ACTIVE"}).json()["items"]
    assert [p["plan_id"] for p in only_active] == [active["plan_id"]]
    row = only_active[0]
    assert (row["account_id"], row["plan_type"], row["risk"], row["steps_total"]) == (
        "acme",
        "RENEWAL_DEFENSE",
        "HIGH",
        3,
    )
    globex = api.get("/v1/plans", params={"account_id": "globex"}).json()["items"]
    assert [p["plan_id"] for p in globex] == [draft["plan_id"]]
    by_type = api.get("/v1/plans", params={"plan_type": "RENEWAL_DEFENSE"}).json()["items"]
    assert len(by_type) == 2
    assert api.get("/v1/plans", params={"plan_type": "OTHER_TYPE"}).json()["items"] == []


def test_list_pages_with_a_cursor(api: ApiClient) -> None:
    created = {api.create("acme", MEDIUM_STEPS)["plan_id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/plans", params=params).json()
        assert len(page["items"]) <= 2
        seen.extend(p["plan_id"] for p in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))


def test_a_cursor_of_another_query_is_refused(api: ApiClient) -> None:
    for _ in range(3):
        api.create("acme", MEDIUM_STEPS)
    cursor = api.get("/v1/plans", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    response = api.get("/v1/plans", params={"limit": 1, "cursor": cursor, "status": "ACTIVE"})
    assert_problem(response, 400, "invalid-cursor")
    assert_problem(api.get("/v1/plans", params={"cursor": "garbage"}), 400, "invalid-cursor")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1000}, {"status": "active"}, {"account_id": "a b"}],
    ids=["limit-0", "limit-big", "status-case", "account-pattern"],
)
def test_list_validates_its_query(api: ApiClient, params: dict[str, Any]) -> None:
    problem = assert_problem(api.get("/v1/plans", params=params), 422, "validation-error")
    assert problem["errors"][0]["location"] == "query"
    assert problem["errors"][0]["field"] == next(iter(params))


def test_plan_types_lists_the_bundle(api: ApiClient) -> None:
    types = api.get("/v1/plan-types").json()
    assert [t["name"] for t in types] == ["RENEWAL_DEFENSE"]
    steps = {s["action_type"]: s for s in types[0]["steps"]}
    assert steps["ESCALATE_SUPPORT_RISK"]["risk"] == "HIGH"
    assert steps["ESCALATE_SUPPORT_RISK"]["human_touch"] is True
