"""The console in a real browser (contract §4), on the local stack as `make run` starts it: headless
Chromium signs in from the console link, connects the workspace in Intercom's pop-up, configures a
campaign, syncs a segment while the bar reaches 100 %, and sees a friend's referral qualify — every
control found by its role and accessible name, no attribute name typed.

One stack and one signed-in page for the module: the steps build on each other, as a person's visit
does. A screenshot of each step goes to $CONSOLE_TEST_OUTPUT (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e import console_flow as flow
from tests.e2e import console_screenshots
from tests.e2e.browser import CHROMIUM_ARGS, EXECUTABLE, MISSING, TIMEOUT_MS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

    from tests.e2e.conftest import RunningStack

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(EXECUTABLE is None and not os.environ.get("CI"), reason=MISSING),
]
# The calls each view makes on arrival, as the README states them.
CALLS_ON_ARRIVAL = {"integrations": 1, "campaigns": 1, "campaign": 6, "referrals": 2}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if EXECUTABLE is None:
        pytest.fail(f"{MISSING}. CI must run the browser tests.")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=EXECUTABLE, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def world(product_stack: RunningStack) -> Iterator[flow.World]:
    with httpx.Client(timeout=30) as http:
        yield flow.World.create(product_stack.info, http)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("CONSOLE_TEST_OUTPUT")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("console-steps")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def page(browser: Browser, shots: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield opened
    opened.screenshot(path=str(shots / "last.png"), full_page=True)
    context.close()
    # A script error or a blocked resource (the policy refusing something) is a defect even if no step failed.
    assert [e for e in errors if "Failed to load resource" not in e] == [], errors


@pytest.fixture
def shot(page: Page, shots: Path) -> flow.Shot:
    def take(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    return take


def test_sign_in_form_keeps_the_key_in_this_tab_only(
    browser: Browser, world: flow.World, shots: Path
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{world.api}/console")
        page.get_by_role("textbox", name="Account API key").fill("not-a-key")
        page.get_by_role("button", name="Sign in").click()
        # A refused key comes back to the form, saying so.
        expect(page.get_by_role("alert")).to_contain_text("did not accept the key")
        expect(page.get_by_role("textbox", name="Account API key")).to_be_focused()
        page.get_by_role("textbox", name="Account API key").fill(world.api_key)
        page.get_by_role("textbox", name="Account API key").press("Enter")
        expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
        page.screenshot(path=str(shots / "sign-in-done.png"))
        assert page.evaluate("Object.values(sessionStorage)") == [world.api_key]
        assert page.evaluate("Object.values(localStorage)") == []
        assert page.evaluate("document.cookie") == ""
        for name in ("Integrations", "Campaigns", "Referrals"):
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert page.evaluate("Object.values(sessionStorage)") == []
    finally:
        context.close()


def test_values_from_referral_factory_are_shown_as_text(page: Page, world: flow.World) -> None:
    flow.sign_in_by_link(page, world)
    page.get_by_role("link", name="Campaigns", exact=True).click()
    expect(page.get_by_role("link", name=flow.CAMPAIGNS[1], exact=True)).to_be_visible()
    assert page.evaluate("document.querySelectorAll('main img, main b').length") == 0
    assert page.evaluate("window.pwned") is None


def test_the_console_link_signs_in_and_the_popup_connects_the_workspace(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    flow.sign_in_by_link(page, world)
    expect(page.get_by_text("No Intercom workspace yet.")).to_be_visible()
    shot("integrations-1-not-connected")
    flow.connect_in_popup(page, world)
    shot("integrations-2-connected")
    view = httpx.get(f"{world.api}/v1/intercom/connection", headers=world.account_headers()).json()
    assert (view["status"], view["workspace_id"]) == ("connected", world.workspace)


def test_the_keyboard_alone_reaches_the_wizard(browser: Browser, world: flow.World) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{world.api}/console")
        expect(page.get_by_role("textbox", name="Account API key")).to_be_focused()
        page.keyboard.type(world.api_key)
        page.keyboard.press("Enter")
        heading = page.get_by_role("heading", name="Integrations", level=1)
        expect(heading).to_be_focused()

        def tab_to(locator: Any, backwards: bool = False, limit: int = 40) -> None:
            for _ in range(limit):
                if locator.evaluate("el => el === document.activeElement"):
                    return
                page.keyboard.press("Shift+Tab" if backwards else "Tab")
            raise AssertionError(f"Tab never reached {locator}")

        tab_to(page.get_by_role("link", name="Campaigns", exact=True), backwards=True)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_focused()
        tab_to(page.get_by_role("link", name=flow.CAMPAIGNS[0], exact=True))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=flow.CAMPAIGNS[0], level=1)).to_be_focused()
        tab_to(page.get_by_role("button", name="Sync Your Contacts"))
        page.keyboard.press("Enter")
        expect(page.get_by_role("radio", name="Only your Users")).to_be_focused()
        page.keyboard.press("ArrowDown")
        expect(page.get_by_role("radio", name="All Contacts")).to_be_checked()
        tab_to(page.get_by_role("button", name="Next", exact=True))
        page.keyboard.press("Enter")
        expect(flow.combobox(page, "First Name")).to_be_focused()
    finally:
        context.close()


def test_the_campaign_is_configured_section_by_section(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    flow.open_campaign(page, flow.CAMPAIGNS[0])
    expect(page.get_by_role("button", name="Refresh attributes")).to_be_visible()
    shot("campaign-1-arrived")
    flow.configure_person_invited(page, shot)
    flow.configure_person_referring(page, referral_link=False)
    flow.configure_sale_value(page, shot)
    saved = flow.saved_settings(world, world.campaigns[0]["id"])
    assert saved["person_invited"]["action"] == "create_lead"
    assert saved["person_invited"]["mapping"] == {"first_name": "name", "email": "email"}
    assert saved["person_invited"]["qualification"] == {
        "object": "contact",
        "attribute": "custom_attributes.customer_status",
        "initial_value": "trial",
        "qualifying_values": ["paid", "active"],
    }
    assert saved["person_referring"]["mapping"] == {"referrer_first_name": "name", "referrer_email": "email"}
    assert saved["commission"] == {
        "object": "contact",
        "sale_value_attribute": "custom_attributes.deal_value",
    }
    assert saved["sync"] is None


def test_a_campaign_syncs_a_segment_and_the_bar_reaches_100_percent(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    flow.sync_segment(page, shot)
    campaign_id = world.campaigns[0]["id"]
    sync = flow.saved_settings(world, campaign_id)["sync"]
    assert sync["inbound_mapping"] == {"first_name": "name", "email": "email"}
    assert sync["return_mapping"] == {
        "referral_link": "custom_attributes.referral_link",
        "referrals_count": "custom_attributes.referrals_count",
        "converted_referrals_count": "custom_attributes.converted_referrals_count",
    }
    members = [c for c in world.contacts().values() if world.segment_id in (c.get("segment_ids") or [])]
    linked = [c for c in members if (c.get("custom_attributes") or {}).get("referral_link")]
    assert len(linked) == flow.SEGMENT_SIZE
    # The attribute the wizard created is now a choice for the referrer's link too; saving one section
    # sends the others as they are.
    flow.configure_person_referring(page, referral_link=True)
    saved = flow.saved_settings(world, campaign_id)
    assert saved["person_referring"]["mapping"]["referral_link"] == "custom_attributes.referral_link"
    assert saved["sync"]["return_mapping"]["referral_link"] == "custom_attributes.referral_link"
    assert saved["person_invited"]["qualification"]["attribute"] == "custom_attributes.customer_status"
    # The ongoing sync on its own, afterwards: off, then on again for the same segment.
    ongoing_url = f"{world.api}/v1/campaigns/{campaign_id}/syncs/ongoing"
    page.get_by_role("button", name="Turn ongoing sync off").click()
    expect(page.get_by_text("Ongoing sync is off", exact=False)).to_be_visible()
    assert httpx.get(ongoing_url, headers=world.account_headers()).json()["enabled"] is False
    page.get_by_role("button", name="Turn ongoing sync on").click()
    expect(page.get_by_text(f"Ongoing sync is on: Segment {flow.SEGMENT_NAME}", exact=False)).to_be_visible()
    ongoing = httpx.get(ongoing_url, headers=world.account_headers()).json()
    assert (ongoing["enabled"], ongoing["audience"], ongoing["segment_id"]) == (
        True,
        "segment",
        world.segment_id,
    )


def test_a_friends_referral_qualifies_and_shows_in_the_referrals_table(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    email = flow.friend_qualifies(world, world.campaigns[0]["id"])
    row = flow.see_referral_qualified(page, email, flow.CAMPAIGNS[0])
    table = page.get_by_role("table", name="Referrals")
    for header in ("Email", "Status", "Intercom", "Campaign", "Sale value", "History"):
        expect(table.get_by_role("columnheader", name=header, exact=True)).to_be_visible()
    expect(row).to_contain_text("Created")
    expect(row).to_contain_text("120")
    shot("referrals-qualified")


def test_a_referral_not_pushed_shows_why_and_offers_retry(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    # The second campaign has no settings: its signups are recorded, not pushed.
    other = world.campaigns[1]
    email = f"waiting.{secrets.token_hex(3)}@console.example"
    world.signup(other["id"], "Wanda", email)
    combobox = flow.combobox(page, "Campaign")
    combobox.select_option(label=other["name"])
    flow.combobox(page, "Status").select_option(label="Any status")
    flow.combobox(page, "Intercom status").select_option(label="Not pushed")
    row = page.get_by_role("row").filter(has_text=email)
    for _ in range(60):
        page.get_by_role("button", name="Filter").click()
        flow.settle(page)
        if row.count():
            break
        page.wait_for_timeout(500)
    expect(row).to_contain_text("Not pushed")
    expect(row).to_contain_text("The campaign has no Intercom settings for this person yet.")
    row.get_by_role("button", name="Retry").click()
    # The retry route answers (queued) or says why not; either way the row says what happened.
    expect(row.get_by_text("Queued").or_(row.get_by_text("Not retried"))).to_be_visible()
    shot("referrals-retry")


def test_an_attribute_no_field_fits_is_created_from_the_campaign_page(page: Page, world: flow.World) -> None:
    flow.open_campaign(page, flow.CAMPAIGNS[0])
    page.get_by_text("Create an Intercom attribute").click()
    name = page.get_by_role("textbox", name="Attribute name")
    name.fill("bad name!")
    page.get_by_role("button", name="Create attribute", exact=True).click()
    # Refused by the API (422 naming `name`): said beside the field.
    expect(name).to_have_attribute("aria-invalid", "true")
    name.fill("plan_tier")
    flow.combobox(page, "Type").select_option(label="List")
    page.get_by_role("textbox", name="List options").fill("free, pro")
    page.get_by_role("button", name="Create attribute", exact=True).click()
    expect(page.get_by_text("Created plan_tier")).to_be_visible()
    referrer = flow.combobox(flow.region(page, "Person Invited"), "Referrer First Name")
    assert "plan_tier" in referrer.locator("option").all_inner_texts()


def test_a_running_sync_can_be_cancelled(page: Page, world: flow.World, shot: flow.Shot) -> None:
    flow.open_campaign(page, flow.CAMPAIGNS[0])
    config = f"{world.intercom}/_emulator/config"
    # A slow Intercom keeps the sync running long enough to be cancelled.
    httpx.put(config, json={"faults": {"latency_ms": 400}}).raise_for_status()
    try:
        page.get_by_role("button", name="Sync Your Contacts").click()
        page.get_by_role("radio", name="All Contacts").check()
        page.get_by_role("button", name="Next", exact=True).click()
        page.get_by_role("button", name="Start Sync").click()
        page.get_by_role("button", name="Cancel sync").click()
        expect(page.get_by_text(re.compile(r"^Cancelled: \d+ of \d+ contacts"))).to_be_visible()
        expect(page.get_by_role("button", name="Cancel sync")).to_be_hidden()
        shot("sync-4-cancelled")
    finally:
        httpx.put(config, json={"faults": {}}).raise_for_status()
    page.get_by_role("button", name="Back to the campaign").click()
    history = page.get_by_role("table", name="Sync history")
    expect(history.get_by_role("row").nth(1)).to_contain_text("Cancelled")


def test_each_view_is_shot_at_both_widths_and_makes_the_calls_the_readme_states(
    browser: Browser, world: flow.World, tmp_path: Path
) -> None:
    """The screenshot script's own run; `python -m tests.e2e.console_screenshots` writes docs/console."""
    result = console_screenshots.shoot(browser, world, tmp_path)
    assert result["calls_on_arrival"] == CALLS_ON_ARRIVAL
    assert result["too_wide"] == {}
    files = [Path(f) for f in result["files"]]
    assert len(files) == len(console_screenshots.views(world)) * len(console_screenshots.WIDTHS)
    for path in files:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width = int.from_bytes(header[16:20], "big")
        assert width == (375 if path.stem.endswith("-mobile") else 1280), path


def test_a_second_workspace_has_its_own_entry_and_a_campaign_chooses_its_workspace(
    page: Page, world: flow.World, shot: flow.Shot
) -> None:
    second = world.connect_another_workspace("Second Workspace", {"name": "beta_score", "data_type": "float"})
    page.get_by_role("link", name="Integrations", exact=True).click()
    workspaces = page.get_by_role("list", name="Intercom")
    expect(workspaces.get_by_role("listitem")).to_have_count(2)
    expect(workspaces.get_by_role("button", name="Disconnect")).to_have_count(2)
    expect(workspaces.get_by_text("Second Workspace")).to_be_visible()
    shot("integrations-4-two-workspaces")

    # The second campaign: the first workspace's attributes until the second is chosen.
    flow.open_campaign(page, flow.CAMPAIGNS[1])
    chooser = flow.combobox(page, "Intercom workspace")
    expect(chooser).to_have_value(world.workspace)
    sale = flow.region(page, "Sale value")
    field = flow.combobox(sale, "Field")
    expect(field.locator("option", has_text="beta_score")).to_have_count(0)
    chooser.select_option(second)
    expect(page.get_by_text("segments of this workspace")).to_be_visible()
    expect(field.locator("option", has_text="beta_score")).to_have_count(1)
    expect(field.locator("option", has_text="deal_value")).to_have_count(0)
    field.select_option(label="beta_score")
    sale.get_by_role("button", name="Save").click()
    expect(sale.get_by_text("Saved.")).to_be_visible()
    shot("campaign-second-workspace")
    saved = flow.saved_settings(world, world.campaigns[1]["id"])
    assert saved["workspace_id"] == second
    assert saved["commission"] == {
        "object": "contact",
        "sale_value_attribute": "custom_attributes.beta_score",
    }
    # The first campaign stays in the first workspace.
    assert flow.saved_settings(world, world.campaigns[0]["id"])["workspace_id"] == world.workspace

    # The second workspace's own "Disconnect" removes it alone.
    page.get_by_role("link", name="Integrations", exact=True).click()
    entry = workspaces.get_by_role("listitem").filter(has_text="Second Workspace")
    entry.get_by_role("button", name="Disconnect").click()
    page.get_by_role("dialog").get_by_role("button", name="Disconnect").click()
    expect(workspaces.get_by_role("listitem")).to_have_count(1)
    expect(workspaces.get_by_text("Connected", exact=True)).to_be_visible()
    removed = page.get_by_role("list", name="Removed workspaces")
    expect(removed.get_by_text("Second Workspace")).to_be_visible()
    expect(removed.get_by_role("button", name="Reconnect")).to_be_visible()
    listed = httpx.get(f"{world.api}/v1/intercom/connections", headers=world.account_headers()).json()["data"]
    assert {w["workspace_id"]: w["status"] for w in listed} == {
        world.workspace: "connected",
        second: "disconnected",
    }


def test_disconnect_is_confirmed_in_a_dialog(page: Page, world: flow.World, shot: flow.Shot) -> None:
    page.get_by_role("link", name="Integrations", exact=True).click()
    workspaces = page.get_by_role("list", name="Intercom")
    workspaces.get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    shot("integrations-3-disconnect-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(workspaces.get_by_text("Connected", exact=True)).to_be_visible()
    workspaces.get_by_role("button", name="Disconnect").click()
    dialog.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("No Intercom workspace yet.")).to_be_visible()
    expect(page.get_by_text("Connected")).to_have_count(0)
    view = httpx.get(f"{world.api}/v1/intercom/connection", headers=world.account_headers()).json()
    assert view["status"] == "disconnected"
