"""Two Intercom workspaces on one account, through the running stack over HTTP (issue 16): a campaign
bound to each; signups, qualification with commission, and a contact sync each touch only their
campaign's workspace; disconnecting one workspace leaves the other working."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from local.demo import DEMO_SETTINGS, Demo, ready_for_signups
from tests.e2e.conftest import RunningStack, queue_drained

TIMEOUT_S = 30.0
POLL_S = 0.2


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)  # workspace A connected, the first campaign bound to it
        yield prepared


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return found


def connect_another(demo: Demo, name: str) -> str:
    """A second workspace connected over HTTP as a script would: connect, consent, callback."""
    workspace = f"ws{secrets.token_hex(3)}"
    demo.http.post(
        f"{demo.intercom}/_emulator/workspaces", json={"id_code": workspace, "name": name, "region": "US"}
    ).raise_for_status()
    started = demo.http.post(f"{demo.api}/v1/intercom/connect", json={}, headers=demo.account())
    authorize_url = started.json()["authorize_url"]
    consent = demo.http.get(
        f"{authorize_url}&{urlencode({'auto_approve': 'true', 'workspace': workspace})}",
        follow_redirects=False,
    )
    assert consent.status_code == 302, consent.text
    callback = demo.http.get(
        consent.headers["location"], headers={"Accept": "application/json"}, follow_redirects=False
    )
    assert callback.status_code == 200, callback.text
    return workspace


def contacts(demo: Demo, workspace: str) -> dict[str, dict[str, Any]]:
    url = f"{demo.intercom}/_emulator/workspaces/{workspace}/contacts"
    return {str(c.get("email")): c for c in demo.http.get(url).json()["data"] if c.get("email")}


def join(demo: Demo, campaign: str, first_name: str, referrer_code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "api_key": demo.state["rf_api_key"],
        "campaign_id": int(campaign),
        "first_name": first_name,
        "email": f"{first_name.lower()}.{secrets.token_hex(3)}@workspaces-stack.example",
    }
    if referrer_code:
        body["referrer_code"] = referrer_code
    response = demo.http.post(f"{demo.rf}/_emulator/signups", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return dict(user.get("data") or user)


def rf_users(demo: Demo) -> dict[int, dict[str, Any]]:
    users = demo.http.get(f"{demo.rf}/_emulator/accounts/{demo.state['rf_api_key']}/users").json()["data"]
    return {u["id"]: u for u in users}


def referral(demo: Demo, email: str) -> dict[str, Any]:
    response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
    [view] = response.json()["data"]
    return dict(view)


def test_two_workspaces_each_get_only_their_campaigns_work(demo: Demo, product_stack: RunningStack) -> None:
    a = demo.state["workspace"]
    first, second = (str(c["id"]) for c in demo.state["campaigns"][:2])
    b = connect_another(demo, "Second Co")
    several = demo.http.get(f"{demo.api}/v1/intercom/connection", headers=demo.account())
    assert several.status_code == 409 and several.json()["error"]["code"] == "several_workspaces"

    # The second campaign is bound to B; without naming a workspace its settings are refused.
    path = f"{demo.api}/v1/campaigns/{second}/intercom"
    unnamed = demo.http.put(path, json=DEMO_SETTINGS, headers=demo.account())
    assert unnamed.status_code == 422 and unnamed.json()["error"]["details"][0]["field"] == "workspace_id"
    bound = {**DEMO_SETTINGS, "workspace_id": b}
    assert demo.http.post(f"{path}/setup", json=bound, headers=demo.account()).status_code == 200
    assert demo.http.put(path, json=bound, headers=demo.account()).status_code == 200
    listed = demo.http.get(f"{demo.api}/v1/intercom/connections", headers=demo.account()).json()["data"]
    assert {w["workspace_id"]: w["campaign_ids"] for w in listed} == {a: [first], b: [second]}

    # Signups: each campaign's people in its own workspace only.
    rita, ben = join(demo, first, "Rita"), join(demo, second, "Ben")
    fred, gina = join(demo, first, "Fred", rita["code"]), join(demo, second, "Gina", ben["code"])
    wait_for(lambda: {rita["email"], fred["email"]} <= set(contacts(demo, a)), "campaign 1's people in A")
    wait_for(lambda: {ben["email"], gina["email"]} <= set(contacts(demo, b)), "campaign 2's people in B")
    assert not {rita["email"], fred["email"]} & set(contacts(demo, b))
    assert not {ben["email"], gina["email"]} & set(contacts(demo, a))
    assert (referral(demo, fred["email"])["workspace_id"], referral(demo, gina["email"])["workspace_id"]) == (
        a,
        b,
    )

    # Qualification and commission: Gina becomes a customer in B; Fred, in A, does not move.
    lead = contacts(demo, b)[gina["email"]]
    demo.http.patch(
        f"{demo.intercom}/_emulator/contacts/{lead['id']}",
        json={"custom_attributes": {"customer_status": "paid", "deal_value": 300.0}},
    ).raise_for_status()
    user = wait_for(lambda: (u := rf_users(demo)[gina["id"]])["qualified_at"] and u, "Gina's qualification")
    assert user["amount"] == 300.0
    wait_for(
        lambda: contacts(demo, b)[ben["email"]]["custom_attributes"].get("converted_referrals") == 1,
        "Ben's converted count in B",
    )
    wait_for(lambda: queue_drained(product_stack, "IntercomEventsQueue"), "the events queue drained")
    assert rf_users(demo)[fred["id"]]["qualify_calls"] == 0
    assert contacts(demo, a)[rita["email"]]["custom_attributes"].get("converted_referrals") in (None, 0)

    # A sync of campaign 2 reads B's contacts only.
    seeded = [f"seeded{i}.{secrets.token_hex(3)}@workspaces-stack.example" for i in range(3)]
    demo.http.post(
        f"{demo.intercom}/_emulator/workspaces/{b}/contacts",
        json={"contacts": [{"role": "user", "email": e, "name": "Seeded User"} for e in seeded]},
    ).raise_for_status()
    started = demo.http.post(
        f"{demo.api}/v1/campaigns/{second}/syncs", json={"audience": "users"}, headers=demo.account()
    )
    assert started.status_code == 202, started.text
    sync_id = started.json()["sync_id"]
    done = wait_for(
        lambda: (
            (s := demo.http.get(f"{demo.api}/v1/syncs/{sync_id}", headers=demo.account()).json())["status"]
            in ("completed", "failed")
            and s
        ),
        "the sync",
    )
    assert done["status"] == "completed" and done["total"] == 4  # Ben and the three seeded users
    by_campaign = {(u["email"], str(u["campaign_id"])) for u in rf_users(demo).values()}
    assert {(e, second) for e in seeded} <= by_campaign
    assert not {e for e, c in by_campaign if c == first} & set(seeded)

    # Disconnecting A leaves B working.
    gone = demo.http.delete(f"{demo.api}/v1/intercom/connections/{a}", headers=demo.account())
    assert gone.status_code == 204, gone.text
    one = demo.http.get(f"{demo.api}/v1/intercom/connection", headers=demo.account()).json()
    assert (one["status"], one["workspace_id"]) == ("connected", b)
    nora, otto = join(demo, second, "Nora"), join(demo, first, "Otto")
    wait_for(lambda: nora["email"] in contacts(demo, b), "campaign 2's signup in B after A is gone")
    held = wait_for(
        lambda: (r := referral(demo, otto["email"]))["intercom_status"] == "not_pushed" and r,
        "campaign 1's signup held",
    )
    assert held["workspace_id"] == a and held["events"][-1]["kind"] == "disconnected"
    assert otto["email"] not in contacts(demo, b)
