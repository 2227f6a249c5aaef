"""Contact sync through the running stack: the API starts it, the SQS pollers feed the coordinator and
the workers' warm instances, the emulators see the real calls. Two pages of users end up each with one
Referral Factory user and its referral link in Intercom, the counters say so, and an unchanged re-sync
writes nothing to either service."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from local.demo import Demo, ready_for_signups

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningStack

USERS = 160  # two search pages (150 a page)
SYNC_TIMEOUT_S = 90.0  # a liveness bound on a shared machine, not a performance goal


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    """An account set up as the demo sets it up (a connected workspace, the first campaign configured
    with the contract's example settings), with USERS generated users."""
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)
        url = f"{prepared.intercom}/_emulator/workspaces/{prepared.state['workspace']}/contacts"
        response = http.post(url, json={"generate": {"count": USERS, "role": "user"}})
        assert response.status_code in (200, 201), response.text
        prepared.state["user_ids"] = response.json()["ids"]
        yield prepared


def run_sync(demo: Demo) -> dict[str, Any]:
    campaign = demo.state["campaign_id"]
    response = demo.http.post(
        f"{demo.api}/v1/campaigns/{campaign}/syncs", json={"audience": "users"}, headers=demo.account()
    )
    assert response.status_code == 202, response.text
    sync_id = response.json()["sync_id"]
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while True:
        sync: dict[str, Any] = demo.http.get(f"{demo.api}/v1/syncs/{sync_id}", headers=demo.account()).json()
        if sync["status"] not in ("queued", "running"):
            return sync
        if time.monotonic() > deadline:
            pytest.fail(f"the sync did not finish in {SYNC_TIMEOUT_S:.0f} s: {sync}")
        time.sleep(0.25)


def stats(base: str) -> dict[str, int]:
    return dict(httpx.get(f"{base}/_emulator/stats").json()["requests"])


def test_every_user_gets_one_referral_factory_user_and_its_link_written_back(demo: Demo) -> None:
    sync = run_sync(demo)
    assert sync["status"] == "completed", sync
    assert (sync["total"], sync["processed"], sync["created"], sync["updated"]) == (USERS,) * 4
    assert (sync["skipped"], sync["failed"], sync["errors"]) == (0, 0, [])
    contacts = demo.http.get(
        f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    ).json()["data"]
    links = {c["id"]: (c.get("custom_attributes") or {}).get("referral_link") for c in contacts}
    assert all(links[i] for i in demo.state["user_ids"])
    users = demo.http.get(f"{demo.rf}/_emulator/accounts/{demo.state['rf_api_key']}/users").json()["data"]
    synced = [u for u in users if str(u["campaign_id"]) == demo.state["campaign_id"]]
    assert len(synced) == USERS == len({u["email"] for u in synced})
    assert {u["url"] for u in synced} == {links[i] for i in demo.state["user_ids"]}
    listed = demo.http.get(
        f"{demo.api}/v1/campaigns/{demo.state['campaign_id']}/syncs", headers=demo.account()
    ).json()["data"]
    assert [s["sync_id"] for s in listed] == [sync["sync_id"]]


def test_an_unchanged_resync_creates_and_writes_nothing(demo: Demo) -> None:
    before_rf, before_ic = stats(demo.rf), stats(demo.intercom)
    sync = run_sync(demo)
    after_rf, after_ic = stats(demo.rf), stats(demo.intercom)
    assert sync["status"] == "completed", sync
    assert (sync["processed"], sync["created"], sync["updated"], sync["skipped"]) == (USERS, 0, 0, USERS)
    assert after_rf.get("POST /api/v2/users", 0) == before_rf.get("POST /api/v2/users", 0)
    assert after_ic.get("PUT /contacts/{id}", 0) == before_ic.get("PUT /contacts/{id}", 0)
    assert after_ic["POST /contacts/search"] - before_ic["POST /contacts/search"] == 2
