"""A push Intercom refuses, fixed and retried, through the running stack: the Referral Factory emulator's
real webhook reaches the product over HTTP, the signup processor's warm instance is refused by the
Intercom emulator (a list attribute that does not take the campaign's name), the referral shows
`failed` with Intercom's code and message and nothing goes to the DLQ; the account fixes its settings
and `POST /v1/referrals/{id}/retry` pushes it through the signup queue into one contact."""

from __future__ import annotations

import copy
import io
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from local.demo import Demo, ready_for_signups
from local.demo import join as demo_join
from tests.e2e.conftest import QUEUE_COUNTS, RunningStack, boto3_client, queue_drained

TIMEOUT_S = 90.0  # a liveness bound, not a performance goal
POLL_S = 0.2


@pytest.fixture(scope="module")
def demo(product_stack: RunningStack) -> Iterator[Demo]:
    with httpx.Client(timeout=30) as http:
        prepared = Demo(product_stack.info, None, http, out=io.StringIO())
        ready_for_signups(prepared)
        yield prepared


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return found


def record(demo: Demo, email: str) -> dict[str, Any] | None:
    response = demo.http.get(f"{demo.api}/v1/referrals", params={"email": email}, headers=demo.account())
    assert response.status_code == 200, response.text
    found = response.json()["data"]
    return dict(found[0]) if found else None


def contacts(demo: Demo, email: str) -> list[dict[str, Any]]:
    url = f"{demo.intercom}/_emulator/workspaces/{demo.state['workspace']}/contacts"
    return [c for c in demo.http.get(url).json()["data"] if c.get("email") == email]


def dead_letters(stack: RunningStack) -> int:
    sqs = boto3_client(stack, "sqs")
    url = sqs.get_queue_url(QueueName="local-SignupDLQ")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))["Attributes"]
    return sum(int(attributes[name]) for name in QUEUE_COUNTS)


def test_a_refused_push_fails_with_intercoms_reason_and_a_retry_after_the_fix_creates_it(
    demo: Demo, product_stack: RunningStack
) -> None:
    campaign = demo.state["campaign_id"]
    settings_url = f"{demo.api}/v1/campaigns/{campaign}/intercom"
    saved = demo.http.get(settings_url, headers=demo.account())
    assert saved.status_code == 200, saved.text
    working = saved.json()
    name = f"campaign_choice_{secrets.token_hex(3)}"
    created = demo.http.post(
        f"{demo.api}/v1/intercom/attributes",
        json={"name": name, "data_type": "options", "options": ["Spring promo", "Autumn promo"]},
        headers=demo.account(),
    )
    assert created.status_code == 201, created.text
    refusing = copy.deepcopy(working)
    refusing["person_referring"]["mapping"]["campaign_name"] = f"custom_attributes.{name}"
    assert demo.http.put(settings_url, json=refusing, headers=demo.account()).status_code == 200
    dead_before = dead_letters(product_stack)

    email = f"rita.{secrets.token_hex(3)}@retry-stack.example"
    user = demo_join(demo, "Rita", email)
    failed = wait_for(
        lambda: (r := record(demo, email)) and r["intercom_status"] == "failed" and r, "the push failed"
    )
    last = failed["events"][-1]
    assert (last["kind"], last["via"]) == ("push_failed", "webhook")
    assert last["details"]["code"] == "parameter_invalid"
    assert "not in the list of allowed values" in last["details"]["message"]
    assert failed["workspace_id"] == demo.state["workspace"]
    wait_for(lambda: queue_drained(product_stack, "SignupQueue"), "the signup queue settled")
    assert contacts(demo, email) == []
    assert dead_letters(product_stack) == dead_before, "a refusal is an answer, not a dead letter"

    # The account fixes its settings and retries.
    assert demo.http.put(settings_url, json=working, headers=demo.account()).status_code == 200
    retried = demo.http.post(
        f"{demo.api}/v1/referrals/{user['id']}/retry",
        params={"campaign_id": campaign},
        headers=demo.account(),
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["intercom_status"] == "pending"
    [contact] = wait_for(lambda: contacts(demo, email), "the contact in Intercom")
    assert (contact["role"], contact["custom_attributes"]["referral_link"]) == ("user", user["url"])
    done = wait_for(
        lambda: (r := record(demo, email)) and r["intercom_status"] == "created" and r, "the referral created"
    )
    assert done["intercom_contact_id"] == contact["id"]
    assert [(e["kind"], e["via"]) for e in done["events"][-3:]] == [
        ("push_failed", "webhook"),
        ("retry_requested", "api"),
        ("contact_created", "retry"),
    ]
    again = demo.http.post(
        f"{demo.api}/v1/referrals/{user['id']}/retry",
        params={"campaign_id": campaign},
        headers=demo.account(),
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_retryable")
    wait_for(lambda: queue_drained(product_stack, "SignupQueue"), "the signup queue settled")
    assert len(contacts(demo, email)) == 1
    assert dead_letters(product_stack) == dead_before
