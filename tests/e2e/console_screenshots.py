"""Screenshots of each console view at 1280 px and 375 px wide, and the API calls each view makes on
arrival: `python -m tests.e2e.console_screenshots [--out docs/console]`.

Starts the local stack, walks the console through the guide (console_flow) so every view has
something to show, then shoots each view afresh. Prints one JSON line: the files written and the calls
per view (what the README states).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from playwright.sync_api import expect, sync_playwright

from tests.e2e import console_flow as flow
from tests.e2e.browser import CHROMIUM_ARGS, EXECUTABLE, MISSING, TIMEOUT_MS

if TYPE_CHECKING:
    from playwright.sync_api import Browser

WIDTHS = {"desktop": (1280, 900), "mobile": (375, 812)}
ROOT = Path(__file__).resolve().parents[2]


def views(world: flow.World) -> dict[str, str]:
    """Each view by name, and its address."""
    return {
        "sign-in": "",
        "integrations": "#/integrations",
        "campaigns": "#/campaigns",
        "campaign": f"#/campaigns/{world.campaigns[0]['id']}",
        "referrals": "#/referrals",
    }


def prepare(browser: Browser, world: flow.World) -> None:
    """The account as a marketer leaves it after the guide: connected, configured, synced, one friend
    qualified."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def no_shot(_name: str) -> None:
        return None

    try:
        flow.sign_in_by_link(page, world)
        flow.connect_in_popup(page, world)
        flow.open_campaign(page, flow.CAMPAIGNS[0])
        flow.configure_person_invited(page, no_shot)
        flow.configure_person_referring(page, referral_link=False)
        flow.configure_sale_value(page, no_shot)
        flow.sync_segment(page, no_shot)
        email = flow.friend_qualifies(world, world.campaigns[0]["id"])
        flow.see_referral_qualified(page, email, flow.CAMPAIGNS[0])
    finally:
        context.close()


def shoot(browser: Browser, world: flow.World, out: Path) -> dict[str, Any]:
    """Each view at each width into `out`; returns the files and the calls each view made on arrival."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    calls: dict[str, int] = {}
    too_wide: dict[str, int] = {}
    for width_name, (width, height) in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        counter = flow.ApiCalls(page, world.api)
        try:
            for name, fragment in views(world).items():
                if name == "sign-in":
                    page.goto(f"{world.api}/console")
                    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
                else:
                    # A fresh arrival, a whole page load (the tab keeps its sessionStorage): every call
                    # until the network is quiet is the view's own.
                    page.goto("about:blank")
                    mark = len(counter.seen)
                    page.goto(f"{world.api}/console{fragment}")
                    flow.settle(page)
                    calls[name] = len(counter.since(mark))
                scroll_width = int(page.evaluate("document.documentElement.scrollWidth"))
                if scroll_width > width:
                    too_wide[f"{name}-{width_name}"] = scroll_width
                path = out / f"{name}-{width_name}.png"
                page.screenshot(path=str(path))
                written.append(str(path))
                if name == "sign-in":
                    page.goto(world.console_link())
                    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
        finally:
            context.close()
    # A page wider than the screen makes a person scroll sideways to read it (tables scroll on their own).
    return {"files": written, "calls_on_arrival": calls, "too_wide": too_wide}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args(argv)
    if EXECUTABLE is None:
        print(MISSING, file=sys.stderr)
        return 1
    from tests.e2e.conftest import start_stack

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), "--schedule-interval", "3600")
        try:
            with httpx.Client(timeout=30) as http, sync_playwright() as playwright:
                world = flow.World.create(stack.info, http)
                browser = playwright.chromium.launch(executable_path=EXECUTABLE, args=CHROMIUM_ARGS)
                prepare(browser, world)
                result = shoot(browser, world, args.out)
                browser.close()
        finally:
            stack.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
