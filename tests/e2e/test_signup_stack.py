"""Signup push through the running stack: the Referral Factory emulator's real webhooks reach the
product's receiver over HTTP, the SQS pollers feed the processor's warm instances, and contacts appear
in the Intercom emulator. Each person arrives once, a duplicated webhook still makes one contact, and
a dropped one is found by the catch-up."""

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
from tests.e2e.conftest import RunningStack, boto3_client, queue_drained

ARRIVAL_TIMEOUT_S = 90.0  # a liveness bound, not a performance goal (bench.signup measures that)
POLL_S = 0.2


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    """An account set up as the demo sets it up (webhooks to the product, a connected workspace, the
    first campaign configured), without the demo's seeded contacts."""
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)
        yield prepared


@pytest.fixture
def rf_faults(demo: Demo) -> Iterator[Callable[[dict[str, float]], None]]:
    """Set the Referral Factory emulator's faults for one test; cleared afterwards whatever happens."""

    def set_faults(faults: dict[str, float]) -> None:
        response = demo.http.put(f"{demo.rf}/_emulator/config", json={"faults": faults})
        assert response.status_code == 200, response.text

    yield set_faults
    set_faults({})


def join(demo: Demo, first_name: str, referrer_code: str | None = None) -> dict[str, Any]:
    email = f"{first_name.lower()}.{secrets.token_hex(3)}@signup-stack.example"
    return demo_join(demo, first_name, email, referrer_code)


def contacts(demo: Demo, email: str) -> list[dict[str, Any]]:
    url = f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    return [c for c in demo.http.get(url).json()["data"] if c.get("email") == email]


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = ARRIVAL_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(POLL_S)
    return found


def arrived(demo: Demo, email: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_for(lambda: contacts(demo, email), f"{email} in Intercom")
    return found[0]


def records(demo: Demo, email: str) -> list[dict[str, Any]]:
    response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def webhook_stats(demo: Demo) -> dict[str, int]:
    stats = demo.http.get(f"{demo.rf}/_emulator/stats").json()
    return {"sent": stats["webhooks_sent"], "failed": stats["webhooks_failed"]}


def signup_queue_settled(stack: RunningStack) -> bool:
    """Nothing waiting in, being worked on from or handed back with a delay to the signup queue: a
    duplicate handed back while the first copy held the push lease (30 s) has been handled too."""
    return queue_drained(stack, "SignupQueue")


def test_a_referrer_and_a_friend_arrive_once_each(demo: Demo, product_stack: RunningStack) -> None:
    referrer = join(demo, "Rita")
    friend = join(demo, "Fred", referrer_code=referrer["code"])
    rita = arrived(demo, referrer["email"])
    fred = arrived(demo, friend["email"])
    # The friend is counted on the referrer's contact once both are in Intercom.
    wait_for(
        lambda: contacts(demo, referrer["email"])[0]["custom_attributes"].get("referrals_count") == 1,
        "the referrer's referrals_count",
    )
    wait_for(lambda: signup_queue_settled(product_stack), "the signup queue settled")
    assert len(contacts(demo, referrer["email"])) == len(contacts(demo, friend["email"])) == 1
    assert (rita["role"], rita["name"], rita["custom_attributes"]["referral_link"]) == (
        "user",
        "Rita",
        referrer["url"],
    )
    assert (fred["role"], fred["name"]) == ("lead", "Fred")
    assert fred["custom_attributes"]["referrer_email"] == referrer["email"]
    [rita_record] = records(demo, referrer["email"])
    [fred_record] = records(demo, friend["email"])
    assert (rita_record["type"], rita_record["intercom_contact_id"]) == ("person_referring", rita["id"])
    assert (fred_record["type"], fred_record["intercom_contact_id"]) == ("person_invited", fred["id"])
    assert [(e["kind"], e["via"]) for e in fred_record["events"]] == [("contact_created", "webhook")]


def test_a_duplicated_webhook_makes_one_contact(
    demo: Demo, product_stack: RunningStack, rf_faults: Callable[[dict[str, float]], None]
) -> None:
    rf_faults({"webhook_duplicate_rate": 1.0})
    before = webhook_stats(demo)
    person = join(demo, "Dana")
    # Both copies were delivered to the product and answered 2xx.
    wait_for(lambda: webhook_stats(demo)["sent"] - before["sent"] == 2, "two deliveries")
    contact = arrived(demo, person["email"])
    wait_for(lambda: signup_queue_settled(product_stack), "the signup queue settled")
    assert [c["id"] for c in contacts(demo, person["email"])] == [contact["id"]]
    [record] = records(demo, person["email"])
    assert record["intercom_contact_id"] == contact["id"]
    assert [e["kind"] for e in record["events"]] == ["contact_created"]


def test_a_dropped_webhook_is_caught_up(
    demo: Demo, product_stack: RunningStack, rf_faults: Callable[[dict[str, float]], None]
) -> None:
    rf_faults({"webhook_drop_rate": 1.0})
    before = webhook_stats(demo)
    person = join(demo, "Drew")
    assert webhook_stats(demo)["failed"] - before["failed"] == 1  # dropped as the signup was made
    assert records(demo, person["email"]) == []
    assert contacts(demo, person["email"]) == []
    # What the scheduler sends for the campaign every 10 minutes, sent now.
    sqs = boto3_client(product_stack, "sqs")
    message = {
        "kind": "signup.catch_up",
        "account_id": demo.state["account_id"],
        "campaign_id": demo.state["campaign_id"],
    }
    sqs.send_message(
        QueueUrl=sqs.get_queue_url(QueueName="local-SignupQueue")["QueueUrl"], MessageBody=json.dumps(message)
    )
    contact = arrived(demo, person["email"])
    [record] = records(demo, person["email"])
    assert record["intercom_contact_id"] == contact["id"]
    assert [(e["kind"], e["via"]) for e in record["events"]] == [("contact_created", "catch_up")]
    wait_for(lambda: signup_queue_settled(product_stack), "the signup queue settled")
    assert len(contacts(demo, person["email"])) == 1
