"""The Active Plans page in a real headless browser (Debian's Chromium, driven by Playwright).

Load the list, open a plan, pause it with a reason, see the ledger entry
appear; a caller without the authority sees the refusal; a user of another
tenant sees none of it. Skipped when /usr/bin/chromium is missing
(``make test`` installs it: tools/ensure_chromium.sh).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from tests.api.harness import AE, DIRECTOR, MANAGER, MEDIUM_STEPS, ApiClient, bearer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

# Outside CI a machine without Chromium skips these tests; in CI (CI=true, where
# `make test` installs it) a missing browser is a failure, never a skip.
IN_CI = os.environ.get("CI", "").lower() == "true"
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and not IN_CI,
    reason=f"{CHROMIUM} is missing (tools/ensure_chromium.sh)",
)

if os.access(CHROMIUM, os.X_OK) or IN_CI:
    from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium from the distribution, headless, with a fresh temporary profile."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: Browser, api: ApiClient, tenant: str, user: str, roles: tuple[str, ...]) -> Page:
    token = bearer(tenant, user, roles)["Authorization"].split(" ", 1)[1]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{api.base_url}/ui/#token={token}")
    return page


def test_list_open_pause_and_see_the_ledger_entry(browser: Browser, api: ApiClient) -> None:
    acme = api.active("acme")
    globex = api.active("globex", MEDIUM_STEPS)
    paused = api.active("initech")
    api.post(f"/v1/plans/{paused['plan_id']}/pause", {"reason": "hold"}, "ae1", AE)
    draft = api.create("acme")

    page = _open(browser, api, api.tenant, "mgr", MANAGER)
    try:
        expect(page.locator("#who")).to_contain_text(f"mgr · {api.tenant}")
        rows = page.locator("#plans tbody tr")
        expect(rows).to_have_count(3)
        listed = set(rows.evaluate_all("rows => rows.map(r => r.dataset.planId)"))
        assert listed == {acme["plan_id"], globex["plan_id"], paused["plan_id"]}
        assert draft["plan_id"] not in listed  # the page lists ACTIVE and PAUSED plans only

        page.fill("#f-account", "globex")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-plan-id", globex["plan_id"])
        page.select_option("#f-status", "PAUSED")
        page.fill("#f-account", "")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-plan-id", paused["plan_id"])
        page.select_option("#f-status", "")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(3)

        page.click(f"a[href='#/plans/{acme['plan_id']}']")
        expect(page.locator("#d-title")).to_contain_text("RENEWAL_DEFENSE · acme")
        expect(page.locator("[data-fact=Risk]")).to_have_text("HIGH")
        expect(page.locator("[data-fact=Expires]")).to_contain_text("UTC")
        expect(page.locator("#steps tbody tr")).to_have_count(3)
        expect(page.locator("#steps tbody tr").nth(2)).to_contain_text("awaiting approval")
        expect(page.locator("#gate")).to_contain_text("Allowed")
        expect(page.locator("#ledger li")).to_have_count(4)
        expect(page.locator("button[data-trigger=resume]")).to_be_disabled()

        page.click("button[data-trigger=pause]")
        page.fill("#reason-input", "waiting for the customer's legal review")
        page.click("#reason-submit")
        expect(page.locator("#result")).to_have_text("Done: the plan is now PAUSED.")
        entry = page.locator("#ledger li[data-event=paused]")
        expect(entry).to_have_count(1)
        expect(entry).to_contain_text("waiting for the customer's legal review")
        expect(entry).to_contain_text("mgr")
        expect(page.locator("#d-title")).to_contain_text("PAUSED")
        expect(page.locator("button[data-trigger=resume]")).to_be_enabled()
    finally:
        page.context.close()
    ledger = api.get(f"/v1/plans/{acme['plan_id']}/ledger").json()
    assert ledger["why_stopped"]["reason"] == "waiting for the customer's legal review"


def test_a_refusal_is_shown_and_changes_nothing(browser: Browser, api: ApiClient) -> None:
    plan = api.active("acme")
    page = _open(browser, api, api.tenant, "viewer", ())
    try:
        page.click(f"a[href='#/plans/{plan['plan_id']}']")
        expect(page.locator("#ledger li")).to_have_count(4)
        page.click("button[data-trigger=abort]")
        page.fill("#reason-input", "not my call")
        page.click("#reason-submit")
        refusal = page.locator("#result .refused")
        expect(refusal).to_contain_text("Not allowed by the authority policy (403)")
        expect(refusal).to_contain_text("AUTHORITY_ROLE_NOT_ALLOWED")
        expect(page.locator("#ledger li")).to_have_count(4)
    finally:
        page.context.close()
    assert api.get(f"/v1/plans/{plan['plan_id']}").json()["status"] == "ACTIVE"


def test_a_user_of_another_tenant_sees_none_of_it(browser: Browser, api: ApiClient) -> None:
    plan = api.active("acme")
    page = _open(browser, api, api.tenant + "-other", "dir", DIRECTOR)
    try:
        expect(page.locator("#list-empty")).to_be_visible()
        expect(page.locator("#plans tbody tr")).to_have_count(0)
        page.evaluate(f"location.hash = '#/plans/{plan['plan_id']}'")
        expect(page.locator("#detail-error")).to_contain_text("Not found (404)")
        expect(page.locator("#detail-body")).to_be_hidden()
        assert not re.search(plan["account_id"] + r"\b", page.locator("main").inner_text())
    finally:
        page.context.close()


def test_without_a_token_the_page_asks_for_one(browser: Browser, api: ApiClient) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{api.base_url}/ui/")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#main")).to_be_hidden()
        page.fill("#token-input", "not-a-token")
        page.click("#signin-form button")
        expect(page.locator("#signin-error")).to_contain_text("the token is not valid")
    finally:
        context.close()
