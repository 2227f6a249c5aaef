"""Connecting Intercom in a real browser: headless Chromium, driven by Playwright, goes from the
product's connect to the Intercom emulator's consent page, clicks, and lands on the product's
callback page, on the local stack started as a person would start it (contract §1, §2).

Debian's Chromium only (tests/e2e/browser.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.browser import CHROMIUM_ARGS, EXECUTABLE, MISSING, TIMEOUT_MS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page, Response

    from tests.e2e.conftest import RunningStack

CALLBACK_PATH = "/oauth/intercom/callback"

# Skipped before the module's stack starts; under CI the `browser` fixture fails instead.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(EXECUTABLE is None and not os.environ.get("CI"), reason=MISSING),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if EXECUTABLE is None:
        pytest.fail(f"{MISSING}. CI must run the browser tests.")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=EXECUTABLE, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextlib.contextmanager
def screenshot_on_failure(page: Page, directory: Path) -> Iterator[None]:
    """Keep a picture of the page a failing test left, and name it in the failure."""
    try:
        yield
    except BaseException as exc:
        path = directory / "failure.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            exc.add_note(f"screenshot of {page.url}: {path}")
        except Exception as shot_error:  # the failure itself matters more than its picture
            exc.add_note(f"no screenshot: {shot_error}")
        raise


@pytest.fixture(scope="module")
def http(product_stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=product_stack.api, timeout=15) as client:
        yield client


def new_account(stack: RunningStack, http: httpx.Client) -> dict[str, str]:
    """A product account's auth header."""
    admin = {"Authorization": f"Bearer {stack.info['admin_token']}"}
    body = {"name": "Browser Co", "referral_factory_api_key": f"rf_{secrets.token_hex(4)}"}
    response = http.post("/admin/accounts", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def new_workspace(stack: RunningStack, name: str) -> str:
    id_code = f"br{secrets.token_hex(4)}"
    body = {"id_code": id_code, "name": name, "region": "EU"}
    response = httpx.post(f"{stack.info['intercom']}/_emulator/workspaces", json=body)
    assert response.status_code == 201, response.text
    return id_code


def authorize_url(http: httpx.Client, account: dict[str, str]) -> str:
    response = http.post("/v1/intercom/connect", json={}, headers=account)
    assert response.status_code == 200, response.text
    url: str = response.json()["authorize_url"]
    return url


def connection(http: httpx.Client, account: dict[str, str]) -> dict[str, Any]:
    response = http.get("/v1/intercom/connection", headers=account)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def is_callback(stack: RunningStack) -> Any:
    return lambda response: response.url.startswith(f"{stack.api}{CALLBACK_PATH}?")


def test_authorize_access_connects_the_chosen_workspace(
    product_stack: RunningStack, http: httpx.Client, page: Page, tmp_path: Path
) -> None:
    account = new_account(product_stack, http)
    new_workspace(product_stack, "Other Workspace")
    chosen = new_workspace(product_stack, "Browser Workspace")
    with screenshot_on_failure(page, tmp_path):
        page.goto(authorize_url(http, account))
        assert page.title() == "Intercom - Authorize access"
        # Several workspaces exist and none is named in the URL: the consent page lets the person pick.
        page.select_option("select[name=workspace]", chosen)
        with page.expect_response(is_callback(product_stack)) as arrived:
            page.get_by_role("button", name="Authorize access").click()
        callback: Response = arrived.value
        page.wait_for_load_state()
        assert callback.status == 200
        assert page.url.startswith(f"{product_stack.api}{CALLBACK_PATH}?code=")
        assert page.title() == "Intercom connected"
        assert page.locator("h1").inner_text() == "Intercom connected"
        assert "Browser Workspace is connected" in page.locator("p").inner_text()

        view = connection(http, account)
        assert view["status"] == "connected"
        assert (view["workspace_id"], view["workspace_name"], view["region"]) == (
            chosen,
            "Browser Workspace",
            "EU",
        )

        # Reloading the callback replays a spent state: refused, and the connection stays as it is.
        reloaded = page.reload()
        assert reloaded is not None
        assert 400 <= reloaded.status < 500
        assert page.locator("h1").inner_text() == "Intercom was not connected"
        assert connection(http, account) == view


def test_deny_access_connects_nothing(
    product_stack: RunningStack, http: httpx.Client, page: Page, tmp_path: Path
) -> None:
    account = new_account(product_stack, http)
    workspace = new_workspace(product_stack, "Denied Workspace")
    with screenshot_on_failure(page, tmp_path):
        page.goto(f"{authorize_url(http, account)}&workspace={workspace}")
        assert "Denied Workspace" in page.locator("form").inner_text()
        with page.expect_response(is_callback(product_stack)) as arrived:
            page.click("#deny")
        callback: Response = arrived.value
        page.wait_for_load_state()
        assert 400 <= callback.status < 500
        assert "error=access_denied" in page.url
        assert page.title() == "Intercom was not connected"
        assert "not granted" in page.locator("p").inner_text()

        view = connection(http, account)
        assert view["status"] == "disconnected"
        assert view["workspace_id"] is None
