"""Qualification through the running stack: a person edits a referred contact in the Intercom emulator,
its signed notification reaches the product's receiver over HTTP (twice: the emulator duplicates it),
the poller feeds the processor, and Referral Factory's user is qualified once, with the sale value;
the referrer's converted count comes back to Intercom and GET /v1/referrals shows the history."""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from local.demo import Demo, ready_for_signups
from local.demo import join as demo_join
from tests.e2e.conftest import RunningStack, queue_drained

TIMEOUT_S = 15.0
POLL_S = 0.2


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)
        yield prepared
        http.put(f"{prepared.intercom}/_emulator/config", json={"faults": {}})


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return found


def join(demo: Demo, first_name: str, referrer_code: str | None = None) -> dict[str, Any]:
    email = f"{first_name.lower()}.{secrets.token_hex(3)}@qualify-stack.example"
    return demo_join(demo, first_name, email, referrer_code)


def contact(demo: Demo, email: str) -> dict[str, Any] | None:
    url = f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    return next((c for c in demo.http.get(url).json()["data"] if c.get("email") == email), None)


def handled(stack: RunningStack, topic: str, outcome: str) -> int:
    """How many notifications of `topic` the processor has logged as handled with `outcome`."""
    count = 0
    for line in stack.logs().splitlines():
        if '"notification handled"' not in line or "{" not in line:
            continue
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        count += entry.get("topic") == topic and entry.get("outcome") == outcome
    return count


def rf_user(demo: Demo, user_id: int) -> dict[str, Any]:
    users = demo.http.get(f"{demo.rf}/_emulator/accounts/{demo.state['rf_api_key']}/users").json()["data"]
    return next(u for u in users if u["id"] == user_id)


def test_one_real_flip_qualifies_once_with_the_amount(demo: Demo, product_stack: RunningStack) -> None:
    referrer = join(demo, "Rhea")
    friend = join(demo, "Fitz", referrer["code"])
    lead = wait_for(lambda: contact(demo, friend["email"]), "the friend's lead in Intercom")
    wait_for(lambda: contact(demo, referrer["email"]), "the referrer's user in Intercom")
    # Every notification arrives twice from here on.
    demo.http.put(f"{demo.intercom}/_emulator/config", json={"faults": {"webhook_duplicate_rate": 1.0}})
    edited = demo.http.patch(
        f"{demo.intercom}/_emulator/contacts/{lead['id']}",
        json={"custom_attributes": {"customer_status": "paid", "deal_value": 310.0}},
    )
    assert edited.status_code == 200, edited.text
    user = wait_for(
        lambda: (u := rf_user(demo, friend["id"])) and u["qualified_at"] and u, "the qualification"
    )
    assert user["amount"] == 310.0
    # Another attribute changing afterwards changes nothing.
    handled_before = handled(product_stack, "contact.lead.updated", "already_qualified")
    demo.http.patch(
        f"{demo.intercom}/_emulator/contacts/{lead['id']}", json={"custom_attributes": {"plan": "pro"}}
    )
    counted = wait_for(
        lambda: ((contact(demo, referrer["email"]) or {}).get("custom_attributes") or {}).get(
            "converted_referrals"
        ),
        "the referrer's converted count in Intercom",
    )
    assert counted == 1
    # Only once that edit's notification has been handled, and nothing else is queued, can "nothing"
    # be told from "not yet".
    wait_for(
        lambda: handled(product_stack, "contact.lead.updated", "already_qualified") > handled_before,
        "the later edit's notification handled",
    )
    wait_for(lambda: queue_drained(product_stack, "IntercomEventsQueue"), "the events queue drained")
    assert rf_user(demo, friend["id"])["qualify_calls"] == 1
    assert rf_user(demo, referrer["id"])["qualify_calls"] == 0
    response = demo.http.get(
        f"{demo.api}/v1/referrals", params={"email": friend["email"]}, headers=demo.account()
    )
    [view] = response.json()["data"]
    assert view["status"] == "qualified" and view["sale_value"] == 310.0
    qualified = [e for e in view["events"] if e["kind"] == "qualified"]
    assert [(e["via"], e["details"]["sale_value"]) for e in qualified] == [("webhook", 310.0)]
